import { parseFlags } from '../../../common/src/cli-support.js';
import { DirLock } from '../../../common/src/dir-lock.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit, exitCodeFor } from '../../../common/src/exit-codes.js';
import type { HostFacts } from '../../../common/src/gen/ferry/v1/common.js';
import { createLogger } from '../../../common/src/log.js';
import { loadAgentConfig, type AgentConfig, type AgentRawConfig } from '../config.js';
import { join } from '../enroll/join.js';
import { certLease, describeLease } from '../enroll/reauth.js';
import { collectFacts } from '../facts.js';
import { SessionLoop } from '../session/session-loop.js';
import { AgentState, type Identity, type RunStatus } from '../state/agent-state.js';
import { resolveOnStart } from '../upgrade/trial.js';
import { systemUpgradeHost } from '../upgrade/upgrade-host.js';
import { FERRY_VERSION } from '../../../common/src/version.js';

/** Flags every command takes: where the state is, and a settings file. */
const common = { state: { type: 'string' as const }, config: { type: 'string' as const } };

/** Reads the settings once: the command's flags over FERRY_AGENT_* over --config. */
function settings(values: AgentRawConfig & { config?: string }): AgentConfig {
  const { config, ...flags } = values;
  return loadAgentConfig({ state: flags.state, 'log-level': flags['log-level'], bandwidth: flags.bandwidth, root: flags.root, hostname: flags.hostname }, config);
}

export { cmdInstallService, cmdReset, cmdUninstallService } from './cmd-service.js';

const RUN_OWNER = 'ferry-agent run';

/**
 * The `state` a stopped run leaves in status.json when the controller refused
 * it for good, so `status` can say so (and exit 4) after the run has ended.
 */
const REFUSED: Partial<Record<string, string>> = { [ErrorCode.AgentRevoked]: 'revoked', [ErrorCode.NotEnrolled]: 'not-enrolled' };

/**
 * One process per state directory: two `run`s would take turns kicking each
 * other off the controller, and a `join` would swap the identity under a
 * running agent. See common/src/dir-lock.ts for the mechanism.
 */
function lockState(dir: string, owner: string): DirLock {
  return DirLock.acquire(dir, {
    owner, what: 'the agent state directory',
    hint: 'one ferry-agent per state directory: stop the one using it first (systemctl stop ferry-agent), or use another --state directory',
  });
}

function out(json: boolean, obj: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(obj)}\n` : text);
}

export async function cmdJoin(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, force: { type: 'boolean' }, json: { type: 'boolean' }, hostname: { type: 'string' } });
  const joinString = positionals[0];
  if (!joinString || positionals.length > 1) {
    throw new FerryError(ErrorCode.InvalidArgument, 'join takes exactly one join string', 'paste the line `ferry token create` printed: ferry-agent join ferry1/<host:port>/<token>/sha256:<pin>');
  }
  const cfg = settings(values);
  const state = new AgentState(cfg.stateDir);
  const lock = lockState(state.dir, 'ferry-agent join');
  let identity;
  let hostname = '';
  try {
    const facts = withHostname(await collectFacts(), cfg.hostname);
    hostname = facts.hostname;
    identity = await join({ joinString, state, facts, force: values.force, hostname: cfg.hostname,
      onWarning: (w) => process.stderr.write(`warning: ${w}\n`) });
  } finally {
    lock.release();
  }
  const labels = Object.entries(identity.labels).map(([k, v]) => `${k}=${v}`).join(' ');
  out(Boolean(values.json), joinedRecord(identity, hostname, certLease(state.load().certPem).notAfterMs, state.dir),
    `enrolled as ${identity.agentId}\n  labels: ${labels}\n  state:  ${state.dir} (key, certificate and CA, mode 0600)\nnext: run \`ferry-agent install-service\` (or \`ferry-agent run\`) to connect\n`);
  return Exit.Ok;
}

// Set only by `scripts/build-agent.mjs --test-fail-start` (esbuild define): a release that is broken on purpose.
declare const __FERRY_TEST_FAIL_START__: boolean | undefined;

export async function cmdRun(args: string[]): Promise<number> {
  if (typeof __FERRY_TEST_FAIL_START__ === 'boolean' && __FERRY_TEST_FAIL_START__) {
    // What a broken release looks like to systemd and the upgrade watcher: it answers `version`, then dies at start.
    process.stderr.write('panic: this agent was built with --test-fail-start and exits at start\n');
    return 70;
  }
  const { values } = parseFlags(args, { ...common, 'log-level': { type: 'string' }, bandwidth: { type: 'string' }, root: { type: 'string' } }, false);
  const cfg = settings(values);
  const state = new AgentState(cfg.stateDir);
  if (!state.isEnrolled()) state.load(); // says why, without creating anything
  const lock = lockState(state.dir, RUN_OWNER);
  try {
    return await runLocked(cfg, state);
  } finally {
    lock.release();
  }
}

async function runLocked(cfg: AgentConfig, state: AgentState): Promise<number> {
  const { identity } = state.load();
  const { bandwidthBytesPerSec, root } = cfg;
  const log = createLogger({ name: 'ferry-agent', level: cfg.logLevel, fd: 1 }).child({ agent: identity.agentId });
  let since = Date.now();
  let lastState = '';
  const loop = new SessionLoop({
    state, log, facts: async () => withHostname(await collectFacts(), identity.hostname), bandwidthBytesPerSec, root, upgradeWindowMs: cfg.upgradeWindowMs,
    onState: (s, d) => {
      if (s !== lastState) since = Date.now();
      lastState = s;
      const st: RunStatus = { pid: process.pid, state: s, controller: d.controller, sinceMs: since, lastError: d.error?.describe() ?? '', updatedMs: Date.now() };
      state.writeStatus(st);
    },
  });
  // This function is the one owner of signals for the agent process.
  let stopping = false;
  const done = new Promise<void>((resolveDone) => {
    const finish = () => {
      clearInterval(poll);
      resolveDone();
    };
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ sig }, 'second signal: exiting now');
        process.exit(Exit.Interrupted);
      }
      stopping = true;
      log.info({ sig }, 'stopping');
      void loop.stop(5_000).then(finish);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    const poll = setInterval(() => {
      if (loop.fatal) void loop.stop(0).then(finish);
    }, 200);
  });
  log.info({ stateDir: state.dir, controllers: identity.addresses, version: FERRY_VERSION }, 'agent starting');
  // An upgrade left in flight by a crash or reboot is resolved before the session starts.
  if (systemUpgradeHost.ownUnit()) await resolveOnStart(state.dir, systemUpgradeHost, log);
  loop.start();
  await done;
  if (loop.fatal) {
    log.error({ code: loop.fatal.code, err: loop.fatal.message }, 'the controller refused this agent; not retrying');
    state.writeStatus({ pid: process.pid, state: REFUSED[loop.fatal.code] ?? 'stopped', controller: '', sinceMs: Date.now(), lastError: loop.fatal.describe(), updatedMs: Date.now() });
    process.stderr.write(`error: ${loop.fatal.describe()}\n`);
    return exitCodeFor(loop.fatal);
  }
  return Exit.Ok;
}

export async function cmdStatus(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { ...common, json: { type: 'boolean' } }, false);
  const json = Boolean(values.json);
  const state = new AgentState(settings(values).stateDir);
  if (!state.isEnrolled()) {
    out(json, statusRecord({ stateDir: state.dir, agentState: 'not-enrolled' }),
      `not enrolled (no identity in ${state.dir})\nnext: ferry-agent join <join-string from your fleet operator>\n`);
    return Exit.NotEnrolled;
  }
  const { identity, certPem } = state.load();
  const lease = describeLease(certPem);
  // Running means a live `run` holds the directory's lock (a pid in
  // status.json could have been reused by another process since).
  const holder = DirLock.holder(state.dir);
  const running = holder?.owner === RUN_OWNER;
  const written = state.readStatus();
  const st = running && written?.pid === holder.pid ? written : undefined;
  const connected = st?.state === 'connected';
  // A run that ended because the controller refused this agent for good left
  // that in status.json; a later join (enrolledAtMs) supersedes it.
  const refused = !running && written && written.updatedMs >= identity.enrolledAtMs && (written.state === 'revoked' || written.state === 'not-enrolled')
    ? written : undefined;
  const labels = Object.entries(identity.labels).map(([k, v]) => `${k}=${v}`).join(' ');
  const lines = [
    `enrolled:   yes, as ${identity.agentId} (since ${new Date(identity.enrolledAtMs).toISOString()})`,
    `controller: ${identity.addresses.join(', ')} (CA ${identity.caPin})`,
    `labels:     ${labels}`,
    `certificate: ${lease.expired ? 'expired' : 'valid until'} ${lease.notAfter}; ${lease.next}`,
    refused
      ? `agent:      stopped: the controller ${refused.state === 'revoked' ? 'revoked this agent' : 'no longer knows this agent'} (${new Date(refused.sinceMs).toISOString()})`
      : !running
      ? 'agent:      not running (start it: systemctl start ferry-agent, or ferry-agent run)'
      : st
        ? `agent:      running (pid ${st.pid}), ${st.state} to ${st.controller} since ${new Date(st.sinceMs).toISOString()}`
        : `agent:      running (pid ${holder.pid}), starting`,
  ];
  if (st && !connected && st.lastError) lines.push(`last error: ${st.lastError}`);
  if (refused) lines.push(`error:      ${refused.lastError}`);
  const agentState = refused ? refused.state : !running ? 'not-running' : st ? st.state : 'starting';
  out(json, statusRecord({ stateDir: state.dir, agentState, agentId: identity.agentId, controllers: identity.addresses, labels: identity.labels,
    enrolledAtMs: identity.enrolledAtMs, certNotAfterMs: certLease(certPem).notAfterMs, certExpired: lease.expired, running, connected,
    pid: running ? (st?.pid ?? holder.pid) : null, controller: st?.controller || null, sinceMs: (st ?? refused)?.sinceMs ?? null,
    lastError: (st ?? refused)?.lastError || null }),
    lines.join('\n') + '\n');
  if (connected) return Exit.Ok;
  if (refused) return refused.state === 'revoked' ? Exit.Revoked : Exit.NotEnrolled;
  return running ? Exit.Unreachable : Exit.Failure;
}

/**
 * `ferry-agent join --json` (docs/json.md, "agent-joined"): who the host is
 * now, where it dials and until when its certificate is good.
 */
function joinedRecord(identity: Identity, hostname: string, certNotAfterMs: number, stateDir: string) {
  return { agentId: identity.agentId, hostname, labels: identity.labels, controllers: identity.addresses, enrolledAtMs: identity.enrolledAtMs, certNotAfterMs, stateDir };
}

function withHostname(facts: HostFacts, hostname: string | undefined): HostFacts {
  return hostname ? { ...facts, hostname } : facts;
}

/**
 * `ferry-agent status --json` (docs/json.md, "agent-status"): the same fields
 * whether or not the host is enrolled or the agent runs, null where there is
 * nothing to say; `state` is one word (not-enrolled, not-running, starting,
 * connecting, connected, revoked, ...), times in epoch ms.
 */
function statusRecord(r: { stateDir: string; agentState: string; agentId?: string; controllers?: string[]; labels?: Record<string, string>;
  enrolledAtMs?: number; certNotAfterMs?: number; certExpired?: boolean; running?: boolean; connected?: boolean; pid?: number | null;
  controller?: string | null; sinceMs?: number | null; lastError?: string | null }) {
  return { enrolled: r.agentState !== 'not-enrolled', state: r.agentState, agentId: r.agentId ?? null, controllers: r.controllers ?? [], labels: r.labels ?? {},
    enrolledAtMs: r.enrolledAtMs ?? null, certNotAfterMs: r.certNotAfterMs ?? null, certExpired: r.certExpired ?? null,
    running: r.running ?? false, connected: r.connected ?? false, revoked: r.agentState === 'revoked', pid: r.pid ?? null,
    controller: r.controller ?? null, sinceMs: r.sinceMs ?? null, lastError: r.lastError ?? null, stateDir: r.stateDir };
}
