/**
 * The second half of a self-upgrade, run by the old binary in a transient
 * systemd unit (`ferry-agent upgrade-watch`), outside the agent's cgroup:
 * restart the agent on the new binary, then wait. The new agent commits by
 * itself once it has reconnected over mTLS and passed its self-check
 * (trial.ts). If instead it exits, reports a failed self-check, or the
 * window passes, the watcher stops it, keeps its last log lines, points the
 * binary back at the previous version, records the version as failed here
 * (not retried unless an operator asks) and starts the previous version,
 * which reports the rollback in its hello.
 */
import type { Clock } from '../../../common/src/clock.js';
import { formatDuration } from '../../../common/src/duration.js';
import { ErrorCode } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import { removeGuard } from './guard.js';
import { pointLink } from './start-upgrade.js';
import type { UnitState, UpgradeHost } from './upgrade-host.js';
import { loadUpgradeState, updateUpgradeState, type PendingUpgrade } from './upgrade-state.js';

export interface WatchOptions {
  stateDir: string;
  host: UpgradeHost;
  clock: Clock;
  log: Logger;
  /** Restart the agent on the new binary first (false: adopt an upgrade whose agent already runs the new version). */
  restart: boolean;
  pollMs?: number;
  /** Log lines of the new version kept with a rollback. */
  tailLines?: number;
}

export type WatchResult = 'committed' | 'rolled-back' | 'none';

/** Did the agent's main process end since the baseline (crashed, exited, or is waiting to be restarted)? */
function exited(st: UnitState, baseRestarts: number): boolean {
  return st.nRestarts > baseRestarts || st.activeState === 'failed' || st.activeState === 'inactive' || st.subState === 'auto-restart';
}


/** Watches the upgrade in upgrade/state.json to its end (see the module comment). */
export async function watchUpgrade(o: WatchOptions): Promise<WatchResult> {
  const pollMs = o.pollMs ?? 1_000;
  let p = loadUpgradeState(o.stateDir).pending;
  if (!p || p.phase !== 'switched') {
    o.log.info({ pending: p?.id }, 'no switched upgrade to watch');
    return 'none';
  }
  if (o.restart) {
    o.log.info({ upgrade: p.id, from: p.from, to: p.to, unit: p.unit }, 'restarting the agent on the new version');
    // Blocking: it returns once the old agent has stopped and the new one started (Type=simple).
    const r = await o.host.systemctl(['restart', p.unit]);
    if (r.exitCode !== 0) return rollback(o, p, `systemctl restart ${p.unit} failed: ${r.output}`);
  } else {
    // Adopted after a crash or reboot: the new version gets a full window from now.
    const until = o.clock.now() + p.windowMs;
    const d = updateUpgradeState(o.stateDir, (cur) => (cur.pending?.id === p!.id
      ? { ...cur, pending: { ...cur.pending, deadlineMs: Math.max(cur.pending.deadlineMs ?? 0, until) } } : cur));
    if (d.pending?.id === p.id) p = d.pending;
  }
  const base = (await o.host.unitState(p.unit)).nRestarts;
  for (;;) {
    const d = loadUpgradeState(o.stateDir);
    if (!d.pending || d.pending.id !== p.id) return d.last?.upgradeId === p.id && d.last.outcome === 'committed' ? 'committed' : 'none';
    if (d.pending.selfCheckError) return rollback(o, p, `the new version failed its self-check: ${d.pending.selfCheckError}`);
    const st = await o.host.unitState(p.unit);
    if (exited(st, base)) {
      return rollback(o, p, `the new version exited (${st.activeState}/${st.subState}, exit status ${st.execMainStatus || '?'}, restarts ${st.nRestarts - base})`);
    }
    if (o.clock.now() >= (d.pending.deadlineMs ?? 0)) {
      return rollback(o, p, `the new version did not reconnect to the controller and pass its self-check within ${formatDuration(p.windowMs)}`);
    }
    await o.clock.sleep(pollMs);
  }
}

/** Puts the previous version back (see the module comment). */
async function rollback(o: WatchOptions, p: PendingUpgrade, reason: string): Promise<WatchResult> {
  o.log.warn({ upgrade: p.id, to: p.to, reason }, 'rolling back to the previous version');
  await o.host.systemctl(['stop', p.unit]);
  // Stopped: it cannot commit any more. It may have committed just before.
  const d = loadUpgradeState(o.stateDir);
  if (!d.pending || d.pending.id !== p.id) {
    await o.host.systemctl(['start', p.unit]);
    return d.last?.upgradeId === p.id && d.last.outcome === 'committed' ? 'committed' : 'none';
  }
  const logTail = await o.host.journalTail(p.unit, p.switchedAtMs ?? 0, o.tailLines ?? 30).catch(() => []);
  await pointLink(p.link, p.fromBinary);
  const at = o.clock.now();
  updateUpgradeState(o.stateDir, (cur) => {
    // The agent is stopped, so nothing commits now; another writer's fields (failed versions) are kept.
    if (cur.pending?.id === p.id) delete cur.pending;
    cur.failed[p.to] = { upgradeId: p.id, atMs: at, reason };
    cur.last = { upgradeId: p.id, from: p.from, to: p.to, outcome: 'rolled-back', reason, logTail, errorCode: ErrorCode.UpgradeRolledBack, atMs: at };
    return cur;
  });
  await removeGuard(o.host, p.unit);
  await o.host.systemctl(['reset-failed', p.unit]);
  const r = await o.host.systemctl(['start', p.unit]);
  if (r.exitCode !== 0) o.log.error({ unit: p.unit, output: r.output }, 'the previous version did not start');
  o.log.info({ upgrade: p.id, version: p.from }, 'rolled back: the previous version runs again');
  return 'rolled-back';
}
