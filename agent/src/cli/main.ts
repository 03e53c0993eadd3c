import { exitCodeHelp } from '../../../common/src/exit-codes.js';
import 'reflect-metadata';
import { runCli } from '../../../common/src/cli-support.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { cmdInstallService, cmdJoin, cmdReset, cmdRun, cmdStatus, cmdUninstallService } from './commands.js';

const HELP = `ferry-agent ${FERRY_VERSION} — Ferry's agent: enrolls this host with a controller and runs its jobs.

Usage:
  ferry-agent join <join-string> [--force] [--hostname NAME] [--json]
      Enroll this host. The join string (from your fleet operator, starts with
      ferry://) holds the controller address, a one-time token and the CA pin.
      The key is generated here and never leaves this host. The controller's CA
      is checked against the pin before the token is sent. Running join again
      after a failure (same join string) completes the same enrollment.
      --hostname names the host in the fleet when its kernel host name is not
      unique (cloned images); kept for \`run\`.
  ferry-agent run [--log-level LEVEL] [--bandwidth 2M] [--root DIR]
      Keep a session with the controller: heartbeats, jobs, bundle staging,
      output, certificate renewal; reconnects by itself. Stops cleanly on
      SIGTERM (plan jobs resume at the interrupted step next start). Logs JSON
      lines. --bandwidth caps bundle downloads in bytes per second, for thin
      WAN links. --root makes steps write files under DIR instead of / (like
      dpkg --root: to try a plan without touching this machine, or to prepare
      a mounted image); commands still run on this host. One run per state
      directory: a second one exits with code 2 and names the first.
  ferry-agent status [--json]
      Is this host enrolled, is the agent running and connected, and to what.
  ferry-agent install-service [--unit-dir DIR] [--no-start]
      Write a systemd unit for \`ferry-agent run\`, enable and start it.
  ferry-agent version

Every command also takes --state DIR and --config FILE. Settings are read
once: defaults < --config FILE (YAML: state, log-level, bandwidth, root,
hostname) < FERRY_AGENT_STATE, FERRY_AGENT_LOG_LEVEL, FERRY_AGENT_BANDWIDTH,
FERRY_AGENT_ROOT, FERRY_AGENT_HOSTNAME < flags; every problem is reported at
once. The state directory (default /var/lib/ferry-agent for root, else
~/.local/state/ferry-agent) holds agent.key, agent.crt, ca.crt and
identity.json, all mode 0600, and the lock file ferry.lock.<n> of the process
using it.

Example (field tech):
  ferry-agent join 'ferry://10.0.0.5:7443/?token=fy1....&ca=sha256:...'
  ferry-agent install-service
  ferry-agent status
`;

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'join': return cmdJoin(rest);
    case 'run': return cmdRun(rest);
    case 'status': return cmdStatus(rest);
    case 'install-service': return cmdInstallService(rest);
    case 'uninstall-service': return cmdUninstallService(rest);
    case 'reset': return cmdReset(rest);
    case 'version': case '--version':
      process.stdout.write(`${FERRY_VERSION}\n`);
      return 0;
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(`${HELP}\n${exitCodeHelp()}`);
      return 0;
    default:
      throw new FerryError(ErrorCode.InvalidArgument, `unknown command "${cmd}"`, 'run `ferry-agent --help` to see the commands');
  }
}

void runCli(main);
