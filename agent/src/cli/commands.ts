import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseFlags } from '../../../common/src/cli-support.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { HostFacts } from '../../../common/src/gen/ferry/v1/common.js';
import { createLogger } from '../../../common/src/log.js';
import { join } from '../enroll/join.js';
import { describeLease } from '../enroll/reauth.js';
import { collectFacts } from '../facts.js';
import { installService } from '../service/unit-file.js';
import { SessionLoop } from '../session/session-loop.js';
import { AgentState, defaultStateDir, type RunStatus } from '../state/agent-state.js';
import { isSea } from 'node:sea';

const stateFlag = { state: { type: 'string' as const } };

function stateOf(v: string | undefined): AgentState {
  return new AgentState(resolve(v ?? defaultStateDir()));
}

function out(json: boolean, obj: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(obj)}\n` : text);
}

export async function cmdJoin(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...stateFlag, force: { type: 'boolean' }, json: { type: 'boolean' }, hostname: { type: 'string' } });
  const joinString = positionals[0];
  if (!joinString || positionals.length > 1) {
    throw new FerryError(ErrorCode.InvalidArgument, 'join takes exactly one join string', 'ferry-agent join \'ferry://host:7443/?token=...&ca=sha256:...\' (quote it: it contains & and ?)');
  }
  const state = stateOf(values.state);
  const hostname = values.hostname === undefined ? undefined : checkHostname(values.hostname);
  const identity = await join({ joinString, state, facts: withHostname(await collectFacts(), hostname), force: values.force, hostname });
  const labels = Object.entries(identity.labels).map(([k, v]) => `${k}=${v}`).join(' ');
  out(Boolean(values.json), { enrolled: true, agentId: identity.agentId, labels: identity.labels, stateDir: state.dir },
    `enrolled as ${identity.agentId}\n  labels: ${labels}\n  state:  ${state.dir} (key, certificate and CA, mode 0600)\nnext: run \`ferry-agent install-service\` (or \`ferry-agent run\`) to connect\n`);
  return Exit.Ok;
}

export async function cmdRun(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { ...stateFlag, 'log-level': { type: 'string' }, bandwidth: { type: 'string' }, root: { type: 'string' } }, false);
  const rate = values.bandwidth ?? process.env['FERRY_AGENT_BANDWIDTH'];
  const bandwidthBytesPerSec = rate ? parseRate(rate) : 0;
  const root = targetRoot(values.root ?? process.env['FERRY_AGENT_ROOT']);
  const state = stateOf(values.state);
  const { identity } = state.load();
  const log = createLogger({ name: 'ferry-agent', level: values['log-level'], fd: 1 }).child({ agent: identity.agentId });
  let since = Date.now();
  let lastState = '';
  const loop = new SessionLoop({
    state, log, facts: async () => withHostname(await collectFacts(), identity.hostname), bandwidthBytesPerSec, root,
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
        process.exit(130);
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
  log.info({ stateDir: state.dir, controllers: identity.addresses }, 'agent starting');
  loop.start();
  await done;
  if (loop.fatal) {
    log.error({ code: loop.fatal.code, err: loop.fatal.message }, 'the controller refused this agent; not retrying');
    process.stderr.write(`error: ${loop.fatal.describe()}\n`);
    return Exit.Revoked;
  }
  return Exit.Ok;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function cmdStatus(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { ...stateFlag, json: { type: 'boolean' } }, false);
  const json = Boolean(values.json);
  const state = stateOf(values.state);
  if (!state.isEnrolled()) {
    out(json, { enrolled: false, stateDir: state.dir },
      `not enrolled (no identity in ${state.dir})\nnext: ferry-agent join <join-string from your fleet operator>\n`);
    return Exit.NotEnrolled;
  }
  const { identity, certPem } = state.load();
  const lease = describeLease(certPem);
  const st = state.readStatus();
  const running = Boolean(st && alive(st.pid) && st.state !== 'stopped');
  const connected = running && st!.state === 'connected';
  const labels = Object.entries(identity.labels).map(([k, v]) => `${k}=${v}`).join(' ');
  const lines = [
    `enrolled:   yes, as ${identity.agentId} (since ${new Date(identity.enrolledAtMs).toISOString()})`,
    `controller: ${identity.addresses.join(', ')} (CA ${identity.caPin})`,
    `labels:     ${labels}`,
    `certificate: ${lease.expired ? 'expired' : 'valid until'} ${lease.notAfter}; ${lease.next}`,
    running
      ? `agent:      running (pid ${st!.pid}), ${st!.state} to ${st!.controller} since ${new Date(st!.sinceMs).toISOString()}`
      : 'agent:      not running (start it: systemctl start ferry-agent, or ferry-agent run)',
  ];
  if (running && !connected && st!.lastError) lines.push(`last error: ${st!.lastError}`);
  out(json, { enrolled: true, agentId: identity.agentId, controllers: identity.addresses, labels: identity.labels, certificate: lease, running, connected, status: st ?? null },
    lines.join('\n') + '\n');
  if (connected) return Exit.Ok;
  return running ? Exit.Unreachable : Exit.Failure;
}

export async function cmdInstallService(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { ...stateFlag, 'unit-dir': { type: 'string' }, 'no-start': { type: 'boolean' }, name: { type: 'string' } }, false);
  const state = stateOf(values.state);
  // In the single binary, execPath is the agent itself; in development, node runs this script.
  const command = isSea() ? [process.execPath] : [process.execPath, resolve(process.argv[1]!)];
  const path = await installService({
    command, stateDir: state.dir, unitDir: values['unit-dir'] ?? '/etc/systemd/system', name: values.name ?? 'ferry-agent',
  }, !values['no-start']);
  process.stdout.write(`wrote ${path}${values['no-start'] ? '' : '; enabled and started'}\n`);
  return Exit.Ok;
}

/** "2M", "500K", "1.5G" or plain bytes → bytes per second (binary units). */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?(?:\/s)?$/i.exec(text.trim());
  if (!m) throw new FerryError(ErrorCode.InvalidArgument, `bandwidth "${text}" is not a rate`, 'write it like 512K, 2M or 1G (bytes per second)');
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Math.round(Number(m[1]) * unit);
}

/**
 * `--root DIR`: the directory steps treat as `/` for the files they write
 * (like `dpkg --root`), to try a plan without touching this machine or to
 * prepare a mounted image. Commands (exec, assert, systemctl, ctr) still run
 * on this host.
 */
function targetRoot(dir: string | undefined): string | undefined {
  if (dir === undefined || dir === '' || dir === '/') return undefined;
  const abs = resolve(dir);
  let ok = false;
  try { ok = statSync(abs).isDirectory(); } catch { /* reported below */ }
  if (!ok) throw new FerryError(ErrorCode.InvalidArgument, `--root ${dir}: no such directory`, 'create it first, or leave --root out to work on this machine\'s /');
  return abs;
}

/** A host name as given to `join --hostname`: what the fleet calls this host when its kernel name is not unique (cloned images). */
function checkHostname(name: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(name)) {
    throw new FerryError(ErrorCode.InvalidArgument, `--hostname "${name}" is not a host name`, 'use letters, digits, dots and dashes, like edge-07.plant-7');
  }
  return name;
}

function withHostname(facts: HostFacts, hostname: string | undefined): HostFacts {
  return hostname ? { ...facts, hostname } : facts;
}
