import { withBuiltins } from '../../../common/src/cli/dispatch.js';
import type { CliSpec } from '../../../common/src/cli/spec.js';
import { FERRY_VERSION } from '../../../common/src/version.js';

/**
 * The `ferry-agent` command table: every command and flag with its help.
 * The dispatcher parses with it before a handler (commands.ts) runs, and
 * --help, `ferry-agent completion` and docs/man/ferry-agent.1 are rendered
 * from it. Add a flag here; add a command here and its handler in main.ts.
 */
export const AGENT_CLI: CliSpec = withBuiltins({
  name: 'ferry-agent',
  version: FERRY_VERSION,
  summary: 'Ferry\'s agent: enrolls this host with a controller and runs its jobs',
  description: 'ferry-agent runs on every host of a Ferry fleet. A field tech enrolls the host once with the join string from the fleet operator, then installs the agent as a systemd service; it keeps a session with the controller, runs the jobs it is sent and streams their output back.',
  commands: [
    { name: 'join', summary: 'enroll this host with a join string', args: 'JOIN-STRING', shared: true,
      description: 'The join string (from your fleet operator, starts with ferry1/) holds the controller address, a one-time token and the CA pin; it is safe to paste unquoted (older ferry:// strings still work, quoted). The key is generated here and never leaves this host. The controller\'s CA is checked against the pin before the token is sent. Running join again after a failure (same join string) completes the same enrollment.',
      flags: {
        force: { type: 'boolean', help: 'enroll again even though this host is enrolled' },
        hostname: { type: 'string', value: 'NAME', help: 'the host\'s name in the fleet when its kernel host name is not unique (cloned images)' },
        json: { type: 'boolean', help: 'print one JSON record (docs/json.md, "agent-joined")' },
      },
      examples: ['ferry-agent join ferry1/10.0.0.5:7443/fy1.abcdefghij.SECRET/sha256:PIN'] },
    { name: 'run', summary: 'keep a session with the controller and run its jobs', shared: true,
      description: 'Heartbeats, jobs, bundle staging, output and certificate renewal; reconnects by itself. Stops cleanly on SIGTERM (plan jobs resume at the interrupted step next start). Logs JSON lines. One run per state directory: a second one exits 2 and names the first.',
      flags: {
        'log-level': { type: 'string', value: 'LEVEL', help: 'debug, info, warn or error (default info)' },
        bandwidth: { type: 'string', value: 'RATE', help: 'cap bundle downloads, bytes per second: 512K, 2M, 1G' },
        root: { type: 'string', value: 'DIR', help: 'steps write files under DIR instead of / (commands still run here)' },
      },
      examples: ['ferry-agent run --bandwidth 2M'] },
    { name: 'status', summary: 'is this host enrolled, is the agent running and connected, and to what', shared: true,
      description: 'Exit 0 when enrolled and connected, 1 when the agent is not running, 3 when not enrolled (or the controller no longer knows it), 4 when revoked, 5 when running but not connected. Also says when the certificate expires and what happens next.',
      flags: { json: { type: 'boolean', help: 'print one JSON record (docs/json.md, "agent-status")' } }, examples: ['ferry-agent status'] },
    { name: 'install-service', summary: 'write a systemd unit for `ferry-agent run`, enable and start it', shared: true,
      flags: {
        'unit-dir': { type: 'string', value: 'DIR', help: 'where to write the unit (default /etc/systemd/system)' },
        'no-start': { type: 'boolean', help: 'write the unit only' },
        name: { type: 'string', value: 'NAME', help: 'unit name (default ferry-agent)' },
      },
      description: 'Checks that it runs as root and that systemd runs this host before it writes anything. The service reads the --state and --config given here.',
      examples: ['ferry-agent install-service'] },
    { name: 'uninstall-service', summary: 'stop, disable and remove the systemd unit (a second run changes nothing)', shared: true,
      flags: {
        'unit-dir': { type: 'string', value: 'DIR', help: 'where the unit is (default /etc/systemd/system)' },
        name: { type: 'string', value: 'NAME', help: 'unit name (default ferry-agent)' },
      },
      examples: ['ferry-agent uninstall-service'] },
    { name: 'reset', summary: 'leave the fleet: stop the service, tell the controller, remove the state directory', shared: true,
      description: 'Asks for confirmation (or --yes). Refuses while a `ferry-agent run` holds the state directory. When the controller cannot be reached the state is still removed, and the output says what the operator must revoke.',
      flags: {
        yes: { type: 'boolean', short: 'y', help: 'do not ask for confirmation' },
        'unit-dir': { type: 'string', value: 'DIR', help: 'where the unit is (default /etc/systemd/system)' },
        name: { type: 'string', value: 'NAME', help: 'unit name (default ferry-agent)' },
      },
      examples: ['ferry-agent reset --yes'] },
    { name: 'version', summary: 'this binary\'s version and architecture; the version kept for rollback, failed ones, the last upgrade', shared: true,
      description: 'Works without an enrolled state directory (then only the binary is described). A self-upgrade runs `version --json` on the new binary before it switches to it.',
      flags: { json: { type: 'boolean', help: 'print one JSON record (docs/json.md, "agent-version")' } },
      examples: ['ferry-agent version', 'ferry-agent version --json'] },
    { name: 'upgrade', summary: 'upgrade this host\'s agent service to a binary copied here, with rollback', shared: true,
      description: 'The same path as `ferry agents upgrade` from the controller, for a binary an operator copied to the host: checks that it runs here and reports a version, checks the disk, installs it into STATE/versions/VERSION/ (with a completion marker), keeps the running version beside it, switches the path the service runs with one atomic rename, and starts a watcher with systemd-run (outside the agent\'s cgroup) that restarts the service. The new version must reconnect to the controller over mTLS and pass its self-check within the window, or the previous version is restored and started, the failure recorded with the new version\'s last log lines, and that version not tried again unless --retry-failed. Needs root and the agent installed with install-service (as the single binary).',
      flags: {
        binary: { type: 'string', value: 'FILE', help: 'the new ferry-agent (ferry-agent-linux-ARCH for this host)' },
        window: { type: 'string', value: 'DURATION', help: 'how long the new version has to reconnect (default 2m; env FERRY_AGENT_UPGRADE_WINDOW)' },
        'retry-failed': { type: 'boolean', help: 'try a version that was rolled back on this host before' },
        name: { type: 'string', value: 'NAME', help: 'unit name (default ferry-agent)' },
        json: { type: 'boolean', help: 'print one JSON record' },
      },
      examples: ['ferry-agent upgrade --binary /tmp/ferry-agent-linux-arm64', 'ferry-agent upgrade --binary ./ferry-agent --window 5m'] },
    { name: 'upgrade-watch', summary: 'internal: watches a self-upgrade to its commit or rollback (started by systemd-run)', shared: true,
      flags: { adopt: { type: 'boolean', help: 'the new version already runs (restarted after a crash or reboot): watch without restarting it' } },
      examples: [] },
    { name: 'upgrade-guard', summary: 'internal: before each start of the agent while an upgrade is in flight, makes sure a watcher runs (a systemd drop-in runs it)', shared: true,
      examples: [] },
  ],
  shared: {
    title: 'Common flags',
    hoist: false,
    flags: {
      state: { type: 'string', value: 'DIR', help: 'state directory (env FERRY_AGENT_STATE)' },
      config: { type: 'string', value: 'FILE', help: 'settings file (YAML: state, log-level, bandwidth, root, hostname)' },
    },
  },
  notes: [
    { title: 'Settings', text: 'Settings are read once: defaults < --config FILE < FERRY_AGENT_STATE, FERRY_AGENT_LOG_LEVEL, FERRY_AGENT_BANDWIDTH, FERRY_AGENT_ROOT, FERRY_AGENT_HOSTNAME < flags; every problem is reported at once.' },
    { title: 'Files', text: 'The state directory (default /var/lib/ferry-agent for root, else ~/.local/state/ferry-agent) holds agent.key, agent.crt, ca.crt and identity.json, all mode 0600, and the lock file ferry.lock.<n> of the process using it.' },
  ],
  seeAlso: ['ferry(1)', 'systemctl(1)'],
});
