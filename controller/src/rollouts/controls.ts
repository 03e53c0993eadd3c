/**
 * Operator actions on a rollout. Each is serialised with the scheduler's
 * own changes, recorded as a rollout event, and audited (who, what, why).
 */
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { ActiveRollout } from './active-rollout.js';
import { HOST_TERMINAL, ROLLOUT_TERMINAL } from './model.js';
import type { StoredRollout } from './rollout-store.js';
import type { RolloutScheduler } from './scheduler.js';
import { rolloutTransition, setPaused } from './transitions.js';

function notFound(id: string): FerryError {
  return new FerryError(ErrorCode.NotFound, `no rollout ${id}`, 'list rollouts with `ferry rollout ls`');
}

/** The live rollout, or an error saying why an action does not apply to a finished one. */
async function live(s: RolloutScheduler, id: string, action: string): Promise<ActiveRollout> {
  const a = s.get(id);
  if (a && !ROLLOUT_TERMINAL.has(a.model.state)) return a;
  const stored = a?.stored ?? (await s.store.load(id));
  if (!stored) throw notFound(id);
  throw new FerryError(ErrorCode.InvalidArgument, `rollout ${id} is ${stored.model.state}; there is nothing to ${action}`,
    stored.model.state === 'failed' ? `\`ferry rollout retry ${id}\` runs its failed hosts again` : undefined);
}

async function act(s: RolloutScheduler, id: string, who: string, action: string, fn: (a: ActiveRollout) => Promise<string>, detail: Record<string, unknown> = {}): Promise<StoredRollout> {
  s.requireRunning();
  const stored = await s.serial(async () => {
    const a = await live(s, id, action);
    const message = await fn(a);
    await a.event(action, `${message} (by ${who})`);
    return a.stored;
  });
  await s.deps.audit.record(who, `rollout.${action}`, id, detail);
  s.kick();
  return stored;
}

/** No new host starts and no wave begins; running hosts finish. */
export function pauseRollout(s: RolloutScheduler, id: string, who: string, reason: string): Promise<StoredRollout> {
  return act(s, id, who, 'paused', async (a) => {
    setPaused(a.model, true, reason || `paused by ${who}`);
    await s.store.saveRollout(a.model, null, s.clock.now());
    return a.model.pauseReason;
  }, { reason });
}

/**
 * Clears a pause. Offline timers of hosts waiting in the current wave start
 * again from now: time spent paused is not time spent waiting for them.
 * A rollout paused by its error budget pauses again at the next failure.
 */
export function resumeRollout(s: RolloutScheduler, id: string, who: string): Promise<StoredRollout> {
  return act(s, id, who, 'resumed', async (a) => {
    const was = a.model.pauseReason;
    setPaused(a.model, false, '');
    const now = s.clock.now();
    await a.updateHosts(a.model.hosts.filter((h) => h.wave <= a.model.currentWave && (h.state === 'pending' || h.state === 'ready')), { eligibleAt: now }, true);
    await s.store.saveRollout(a.model, null, now);
    return `resumed (was: ${was})`;
  });
}

/**
 * Hosts not started are cancelled; running hosts' jobs are cancelled; the
 * rollout ends aborted once they stop. A host that is offline cannot stop
 * (or say it did) until it reconnects, so the rollout stays aborting; with
 * `force` the rollout stops waiting for offline running hosts: they end
 * cancelled now, marked as abandoned. Their job is not forgotten — it stays
 * unfinished in the job records, so the host still runs no other plan job
 * until it reports (or is found to have lost it), and its result and output
 * are kept when it does.
 */
export async function abortRollout(s: RolloutScheduler, id: string, who: string, reason: string, force = false): Promise<StoredRollout> {
  const stored = await act(s, id, who, 'abort', async (a) => {
    const aborting = a.model.state === 'aborting';
    if (aborting && !force) {
      const offline = a.model.hosts.filter((h) => h.state === 'running' && !s.deps.sessions.get(h.agentId)).map((h) => h.hostname);
      throw new FerryError(ErrorCode.InvalidArgument, `rollout ${id} is already aborting${offline.length ? `; it waits for running hosts that are offline: ${offline.join(', ')}` : ''}`,
        offline.length ? `\`ferry rollout abort ${id} --force\` stops waiting for them` : undefined);
    }
    if (!aborting) await s.abortNow(a, reason || `aborted by ${who}`);
    if (!force) return reason || 'aborted';
    const gone = a.model.hosts.filter((h) => h.state === 'running' && !s.deps.sessions.get(h.agentId));
    await a.moveHosts(gone, 'abandon', 'cancelled', { finishedAt: s.clock.now(),
      message: `abandoned by abort --force while offline: its job may still finish on the host (\`ferry rollout logs ${id} --host HOST\` shows what it reports)` });
    return `${reason || 'aborted'}; --force: stopped waiting for ${gone.length} offline host(s)${gone.length ? `: ${gone.map((h) => h.hostname).join(', ')}` : ''}`;
  }, { reason, force });
  // The operator sees where the abort got to (aborted, or still aborting for hosts that are online).
  await s.settle();
  return stored;
}

/** Lets the next wave begin now (after an approval gate, or skipping a wait). */
export function approveRollout(s: RolloutScheduler, id: string, who: string): Promise<StoredRollout> {
  return act(s, id, who, 'approved', async (a) => {
    // The transition table refuses an approval unless the rollout waits between waves.
    const next = a.model.currentWave + 1;
    await s.beginWave(a, next, 'approve');
    return `wave ${next + 1} approved`;
  });
}

/**
 * Runs failed hosts (all, or those named) again as a new attempt with a new
 * job id, in their own wave's place. A failed rollout becomes running again.
 * Aborted rollouts are final. The pause flag is left as it is.
 */
export async function retryRollout(s: RolloutScheduler, id: string, who: string, names: string[]): Promise<StoredRollout> {
  s.requireRunning();
  const stored = await s.serial(async () => {
    const a = s.get(id) ?? (await s.store.load(id).then((r) => (r && r.model.state === 'failed' ? s.activate(id, r) : undefined)));
    if (!a) {
      const r = await s.store.load(id);
      if (!r) throw notFound(id);
      throw new FerryError(ErrorCode.InvalidArgument, `rollout ${id} is ${r.model.state}; only failed hosts of a failed or unfinished rollout can be retried`,
        r.model.state === 'aborted' ? 'an aborted rollout is final: create a new one' : undefined);
    }
    const m = a.model;
    if (m.state === 'aborting' || m.state === 'aborted') throw new FerryError(ErrorCode.InvalidArgument, `rollout ${id} is ${m.state}; an aborted rollout is final`);
    const failed = m.hosts.filter((h) => h.state === 'failed');
    const chosen = names.length === 0 ? failed : names.map((n) => {
      const h = m.hosts.find((x) => x.agentId === n || x.hostname === n);
      if (!h) throw new FerryError(ErrorCode.NotFound, `host ${n} is not a target of rollout ${id}`);
      if (h.state !== 'failed') throw new FerryError(ErrorCode.InvalidArgument, `host ${n} is ${h.state}; only failed hosts are retried`);
      return h;
    });
    if (chosen.length === 0) throw new FerryError(ErrorCode.InvalidArgument, `rollout ${id} has no failed hosts`);
    const now = s.clock.now();
    if (m.state === 'failed') rolloutTransition({ ...m }, 'retry', 'running'); // refused before any host changes
    for (const h of chosen) {
      Object.assign(h, { attempt: h.attempt + 1, hostJobId: null, eligibleAt: h.wave <= m.currentWave ? now : null,
        message: `retry ${h.attempt + 1} requested by ${who}`, startedAt: null, finishedAt: null });
    }
    await a.moveHosts(chosen, 'retry', 'pending');
    if (m.state === 'failed') await a.moveTo('retry', 'running', `running again to retry ${chosen.length} host(s)`);
    await a.event('retried', `${chosen.length} host(s): ${chosen.map((h) => h.hostname).join(', ')} (by ${who})`);
    return { stored: a.stored, hosts: chosen.map((h) => h.hostname) };
  });
  await s.deps.audit.record(who, 'rollout.retry', id, { hosts: stored.hosts });
  s.kick();
  return stored.stored;
}

/** True when nothing more will happen to the rollout (watch ends). */
export function settled(r: StoredRollout): boolean {
  return ROLLOUT_TERMINAL.has(r.model.state) && r.model.hosts.every((h) => HOST_TERMINAL.has(h.state));
}
