/**
 * `ferry-agent version`, `ferry-agent upgrade` (an operator on the host
 * installs a binary they copied there, with the same checks, switch, watch
 * and rollback as an upgrade from the controller) and `upgrade-watch` (run
 * by systemd-run, never by hand).
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { parseFlags } from '../../../common/src/cli-support.js';
import { systemClock } from '../../../common/src/clock.js';
import { platformArch } from '../../../common/src/arch.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { createLogger } from '../../../common/src/log.js';
import { FERRY_VERSION, PROTOCOL_VERSION } from '../../../common/src/version.js';
import { loadAgentConfig } from '../config.js';
import { runGuard } from '../upgrade/guard.js';
import { startUpgrade } from '../upgrade/start-upgrade.js';
import { systemUpgradeHost } from '../upgrade/upgrade-host.js';
import { loadUpgradeState, type UpgradeStateData } from '../upgrade/upgrade-state.js';
import { watchUpgrade } from '../upgrade/watcher.js';

const common = { state: { type: 'string' as const }, config: { type: 'string' as const } };

/** The `agent-version` record (docs/json.md). */
function versionRecord(stateDir: string, d: UpgradeStateData) {
  const p = d.pending;
  return {
    version: FERRY_VERSION, protocolVersion: PROTOCOL_VERSION, arch: platformArch(), previous: d.previous || null,
    pending: p ? { id: p.id, from: p.from, to: p.to, phase: p.phase, deadlineMs: p.deadlineMs ?? null } : null,
    failed: Object.entries(d.failed).map(([version, f]) => ({ version, upgradeId: f.upgradeId, atMs: f.atMs, reason: f.reason })),
    last: d.last ? { upgradeId: d.last.upgradeId, from: d.last.from, to: d.last.to, outcome: d.last.outcome, reason: d.last.reason, logTail: d.last.logTail, atMs: d.last.atMs } : null,
    stateDir,
  };
}

export async function cmdVersion(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { ...common, json: { type: 'boolean' } }, false);
  const cfg = loadAgentConfig({ state: values.state }, values.config);
  // Describing the binary must work anywhere (the upgrade checks a new binary with it): an unreadable state is reported, not fatal.
  let d: UpgradeStateData = { previous: '', failed: {} };
  let problem = '';
  try { d = loadUpgradeState(cfg.stateDir); } catch (err) { problem = (err as Error).message; }
  const rec = versionRecord(cfg.stateDir, d);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rec)}\n`);
    return Exit.Ok;
  }
  const lines = [`ferry-agent ${FERRY_VERSION} (linux-${rec.arch}, protocol ${PROTOCOL_VERSION})`, `previous: ${rec.previous ?? 'none (kept after the first upgrade, for rollback)'}`];
  if (rec.pending) lines.push(`upgrading: ${rec.pending.from} -> ${rec.pending.to} (${rec.pending.phase}${rec.pending.deadlineMs ? `, must reconnect by ${new Date(rec.pending.deadlineMs).toISOString()}` : ''})`);
  for (const f of rec.failed) lines.push(`failed here: ${f.version} (rolled back ${new Date(f.atMs).toISOString()}: ${f.reason}; not retried unless asked)`);
  if (rec.last) lines.push(`last upgrade: ${rec.last.from} -> ${rec.last.to} ${rec.last.outcome} (${new Date(rec.last.atMs).toISOString()}): ${rec.last.reason}`);
  if (problem) lines.push(`warning: ${problem}`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return Exit.Ok;
}

export async function cmdUpgrade(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    ...common, binary: { type: 'string' }, window: { type: 'string' }, 'retry-failed': { type: 'boolean' }, name: { type: 'string' }, json: { type: 'boolean' },
  }, false);
  if (!values.binary) throw new FerryError(ErrorCode.InvalidArgument, 'upgrade needs --binary FILE', 'copy the release for this host (ferry-agent-linux-ARCH) to it, then: ferry-agent upgrade --binary FILE');
  const cfg = loadAgentConfig({ state: values.state, 'upgrade-window': values.window }, values.config);
  const unit = `${values.name ?? 'ferry-agent'}`.replace(/(\.service)?$/, '.service');
  const upgradeId = `local-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  // Test seam, read here and nowhere else (startUpgrade takes it as `holdAt`): the e2e test
  // (test/e2e/agent-upgrade.test.ts) kills this very binary, under real systemd on a simulated
  // host, at an exact point of the switch, and a process started by `h.exec` can only be told
  // that through its argv, environment or files. An environment variable keeps it out of the
  // command table and --help. Without it the upgrade never stops; with it, it stops after
  // writing a phase an operator could not have set by accident. Compiling it out of release
  // builds (a define, like --test-fail-start) would need the e2e to install test builds of
  // both versions instead of the release binaries; not done yet (docs/agent-upgrade.md).
  const hold = process.env['FERRY_AGENT_TEST_HOLD_UPGRADE'];
  const started = await startUpgrade({
    stateDir: cfg.stateDir, upgradeId, source: resolve(values.binary), unit, windowMs: cfg.upgradeWindowMs, retryFailed: values['retry-failed'],
    host: systemUpgradeHost, holdAt: hold === 'installed' || hold === 'switched' ? hold : undefined,
  });
  const rec = { upgradeId, from: started.from, to: started.to, watcherUnit: started.watcherUnit, deadlineMs: started.deadlineMs };
  process.stdout.write(values.json ? `${JSON.stringify(rec)}\n`
    : `upgrading ${started.from} -> ${started.to} (${upgradeId}): installed and switched; ${started.watcherUnit} restarts ${unit} and rolls back unless ${started.to} reconnects by ${new Date(started.deadlineMs).toISOString()}\nfollow: journalctl -u ${started.watcherUnit} -f; result: ferry-agent version\n`);
  return Exit.Ok;
}

export async function cmdUpgradeGuard(args: string[]): Promise<number> {
  const { values } = parseFlags(args, common, false);
  const cfg = loadAgentConfig({ state: values.state }, values.config);
  await runGuard(cfg.stateDir, systemUpgradeHost, createLogger({ name: 'ferry-agent-upgrade-guard', level: cfg.logLevel, fd: 1 }));
  return Exit.Ok;
}

export async function cmdUpgradeWatch(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { ...common, adopt: { type: 'boolean' } }, false);
  const cfg = loadAgentConfig({ state: values.state }, values.config);
  const log = createLogger({ name: 'ferry-agent-upgrade', level: cfg.logLevel, fd: 1 });
  // systemClock's timers do not hold the process open (the controller's servers do); here nothing else would.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const result = await watchUpgrade({ stateDir: cfg.stateDir, host: systemUpgradeHost, clock: systemClock, log, restart: !values.adopt })
    .finally(() => clearInterval(keepAlive));
  log.info({ result }, 'upgrade watch finished');
  return Exit.Ok;
}
