/**
 * The agent's side of an upgrade in flight, at start and once connected.
 *
 * At start (resolveOnStart): when this binary is the new version on trial
 * and no watcher is running (the old agent was killed between the switch and
 * systemd-run, or the host rebooted), a watcher is started again so the
 * window still holds. When this binary is the old version and no watcher is
 * running, the switch was interrupted before the new version ever ran: the
 * path is pointed back at this binary and the upgrade recorded as rolled
 * back (the version is not marked failed: it never got its chance).
 *
 * Once connected (commitIfOnTrial): the self-check, then the commit, which
 * keeps the previous version for the next rollback and removes older ones.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { ErrorCode } from '../../../common/src/errors.js';
import type { AgentUpgradeReport } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import type { AgentState } from '../state/agent-state.js';
import { ensureWatcher, removeGuard, watcherRunning } from './guard.js';
import { linkTarget, pointLink } from './start-upgrade.js';
import type { UpgradeHost } from './upgrade-host.js';
import { loadUpgradeState, toReport, updateUpgradeState, UpgradePaths } from './upgrade-state.js';

/** Resolves an upgrade left in flight (see the module comment). Never throws: the agent must start whatever happens. */
export async function resolveOnStart(stateDir: string, host: UpgradeHost, log: Logger, now: () => number = Date.now): Promise<void> {
  try {
    const d = loadUpgradeState(stateDir);
    const p = d.pending;
    if (!p) return;
    if (FERRY_VERSION === p.to) {
      if (p.phase !== 'switched') {
        // Killed between the rename and the state write: the rename happened, since this binary runs.
        const t = now();
        updateUpgradeState(stateDir, (now) => (now.pending?.id === p.id && now.pending.phase !== 'switched'
          ? { ...now, pending: { ...now.pending, phase: 'switched', switchedAtMs: t, deadlineMs: t + p.windowMs } } : now));
      }
      // Normally the guard (ExecStartPre) has started one already.
      await ensureWatcher(host, p, stateDir, log.child({ note: 'on trial' }));
      return;
    }
    if (await watcherRunning(host, p)) return; // it is mid-restart or mid-rollback
    if (existsSync(p.link) && linkTarget(p.link) !== p.fromBinary) await pointLink(p.link, p.fromBinary);
    updateUpgradeState(stateDir, (cur) => {
      if (cur.pending?.id !== p.id) return cur;
      delete cur.pending;
      cur.last = {
        upgradeId: p.id, from: p.from, to: p.to, outcome: 'rolled-back', logTail: [], errorCode: ErrorCode.UpgradeRolledBack, atMs: now(),
        reason: `the upgrade to ${p.to} was interrupted before the new version ran (the agent or the host stopped during the switch); ${FERRY_VERSION} runs, and ${p.to} may be tried again`,
      };
      return cur;
    });
    await removeGuard(host, p.unit);
    log.warn({ upgrade: p.id, to: p.to }, 'an interrupted upgrade was rolled back');
  } catch (err) {
    log.error({ err: (err as Error).message }, 'could not resolve the upgrade in flight');
  }
}

/**
 * Called once connected over mTLS: when this binary is on trial, checks
 * itself and commits. Returns the report to send, or undefined when there
 * was nothing to commit.
 */
export function commitIfOnTrial(state: AgentState, log: Logger, host: UpgradeHost, now: () => number = Date.now): AgentUpgradeReport | undefined {
  const d = loadUpgradeState(state.dir);
  const p = d.pending;
  if (!p || p.to !== FERRY_VERSION) return undefined;
  const problem = selfCheck(state);
  if (problem) {
    updateUpgradeState(state.dir, (cur) => (cur.pending?.id === p.id ? { ...cur, pending: { ...cur.pending, selfCheckError: problem } } : cur));
    log.error({ upgrade: p.id, problem }, 'self-check failed; the watcher rolls back');
    return undefined;
  }
  let committed = false;
  const written = updateUpgradeState(state.dir, (cur) => {
    // The watcher rolled back meanwhile (it stops this agent first): nothing to commit.
    if (cur.pending?.id !== p.id) return cur;
    committed = true;
    delete cur.pending;
    cur.previous = p.from;
    cur.last = { upgradeId: p.id, from: p.from, to: p.to, outcome: 'committed', reason: 'reconnected and passed its self-check', logTail: [], errorCode: '', atMs: now() };
    return cur;
  });
  if (!committed) return undefined;
  log.info({ upgrade: p.id, from: p.from, to: p.to }, 'upgrade committed; the previous version is kept for rollback');
  pruneVersions(state.dir, [p.to, p.from], log);
  removeGuard(host, p.unit).catch((err: Error) => log.error({ err: err.message }, 'could not remove the upgrade guard drop-in'));
  return toReport(written.last!);
}

/** Why this agent cannot be trusted to stay, or undefined. It got here by reconnecting, so the session works. */
function selfCheck(state: AgentState): string | undefined {
  try {
    const { identity } = state.load();
    if (!identity.agentId) return 'the identity in the state directory has no agent id';
  } catch (err) {
    return `cannot load the state directory: ${(err as Error).message}`;
  }
  return undefined;
}

/** Removes installed versions other than `keep` (current and previous). */
function pruneVersions(stateDir: string, keep: string[], log: Logger): void {
  const paths = new UpgradePaths(stateDir);
  const dir = paths.versionDir('');
  if (!existsSync(dir)) return;
  for (const v of readdirSync(dir)) {
    if (keep.includes(v)) continue;
    rmSync(paths.versionDir(v), { recursive: true, force: true });
    log.info({ version: v }, 'removed an older installed version');
  }
}
