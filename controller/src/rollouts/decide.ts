/**
 * One scheduling decision for one rollout, as a pure function of its model
 * and the world (time, which agents are connected, which are busy), so the
 * semantics are unit-tested without a store, agents or timers. The
 * scheduler applies the actions and asks again.
 */
import { formatDuration } from '../../../common/src/duration.js';
import { HOST_TERMINAL, ROLLOUT_TERMINAL, type RolloutModel } from './model.js';
import { waveConcurrency } from './waves.js';

export interface World {
  now: number;
  connected(agentId: string): boolean;
  /**
   * Since when a disconnected agent has been seen offline by this
   * controller: when its session dropped, or when the controller started
   * (while it was down no host could connect).
   */
  offlineSince(agentId: string): number;
  /** Why the host cannot start now (another rollout's or job's work on it), or undefined. */
  busy(agentId: string): string | undefined;
}

export type Action =
  | { kind: 'start'; agentId: string }
  /** The host waits (offline or busy); `message` says why, stable while the reason holds. */
  | { kind: 'hold'; agentId: string; message: string }
  | { kind: 'offline'; agentId: string; to: 'failed' | 'skipped'; message: string }
  | { kind: 'begin-wave'; wave: number }
  /** The current wave is done; the next waits for approval or until a time. */
  | { kind: 'gate'; approval: boolean; until: number | null }
  | { kind: 'finish'; state: 'succeeded' | 'failed' | 'aborted' };

/** What to do next for rollout `r`; an empty list means nothing until something changes. */
export function decide(r: RolloutModel, w: World): Action[] {
  if (ROLLOUT_TERMINAL.has(r.state)) return [];
  if (r.state === 'aborting') {
    return r.hosts.some((h) => h.state === 'running') ? [] : [{ kind: 'finish', state: 'aborted' }];
  }
  // Paused: nothing starts and no wave begins; running hosts finish on their own.
  if (r.state === 'prefetching' || r.paused || r.state === 'awaiting-approval') return [];
  if (r.state === 'waiting') {
    return r.gateUntil !== null && w.now >= r.gateUntil ? [{ kind: 'begin-wave', wave: r.currentWave + 1 }] : [];
  }
  if (r.currentWave < 0) return r.waveSizes.length > 0 ? [{ kind: 'begin-wave', wave: 0 }] : [{ kind: 'finish', state: 'succeeded' }];

  const s = r.strategy;
  // No maxConcurrency: no limit (a retried host of an earlier wave runs alongside the current wave).
  const limit = s.maxConcurrency ? waveConcurrency(s.maxConcurrency, r.waveSizes[r.currentWave] ?? 1) : Number.POSITIVE_INFINITY;
  let running = r.hosts.filter((h) => h.state === 'running').length;
  let unfinished = 0;
  const actions: Action[] = [];
  let offline = false;
  // Hosts of earlier waves are here too: a retried host runs again in its own wave's place.
  for (const h of r.hosts) {
    if (h.wave > r.currentWave || HOST_TERMINAL.has(h.state)) continue;
    if (h.state === 'running') {
      unfinished++;
      continue;
    }
    if (!w.connected(h.agentId)) {
      // Offline time counts only while the host is wanted: from its wave (or retry, or resume) and from its disconnect.
      const since = Math.max(h.eligibleAt ?? w.now, w.offlineSince(h.agentId));
      if (w.now - since >= s.offlineTimeoutMs) {
        offline = true;
        actions.push({ kind: 'offline', agentId: h.agentId, to: s.offline === 'skip' ? 'skipped' : 'failed',
          message: `offline for ${formatDuration(w.now - since)} (offlineTimeout ${formatDuration(s.offlineTimeoutMs)}, offline: ${s.offline})` });
      } else {
        unfinished++;
        actions.push({ kind: 'hold', agentId: h.agentId, message: `offline: waiting up to ${formatDuration(s.offlineTimeoutMs)} (until ${new Date(since + s.offlineTimeoutMs).toISOString()})` });
      }
      continue;
    }
    unfinished++;
    if (running >= limit) continue;
    const busy = w.busy(h.agentId);
    if (busy) {
      actions.push({ kind: 'hold', agentId: h.agentId, message: busy });
      continue;
    }
    actions.push({ kind: 'start', agentId: h.agentId });
    running++;
  }
  // Offline verdicts change counts the error budget reads: apply them before judging the wave.
  if (offline || unfinished > 0) return actions;
  if (r.currentWave >= r.waveSizes.length - 1) {
    return [{ kind: 'finish', state: r.hosts.some((h) => h.state === 'failed') ? 'failed' : 'succeeded' }];
  }
  if (s.approval) return [{ kind: 'gate', approval: true, until: null }];
  if (s.waitMs > 0) return [{ kind: 'gate', approval: false, until: w.now + s.waitMs }];
  return [{ kind: 'begin-wave', wave: r.currentWave + 1 }];
}
