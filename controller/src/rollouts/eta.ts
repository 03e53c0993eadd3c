/**
 * A rough ETA for a rollout, for `ferry rollout watch`: the mean time a
 * finished host took, times the batches still to run at each wave's
 * concurrency, plus the waits between waves. Unknown (null) until a host
 * has finished, while paused, and past an approval gate (a person decides).
 */
import { HOST_TERMINAL, ROLLOUT_TERMINAL, type RolloutModel } from './model.js';
import { waveConcurrency } from './waves.js';

export interface Eta {
  /** Milliseconds until the rollout should finish; null when it cannot be estimated. */
  ms: number | null;
  /** Why there is no estimate, or what it excludes ("after approval"). */
  note: string;
}

/** Mean duration of finished host runs, or null when none has finished. */
export function meanHostMs(r: RolloutModel): number | null {
  const done = r.hosts.filter((h) => (h.state === 'succeeded' || h.state === 'failed') && h.startedAt !== null && h.finishedAt !== null);
  if (done.length === 0) return null;
  return done.reduce((n, h) => n + (h.finishedAt! - h.startedAt!), 0) / done.length;
}

/**
 * Per wave: the work left (running hosts' remaining mean time, plus a mean
 * per waiting host) spread over the wave's concurrency, but never less than
 * the longest running host still needs.
 */
export function estimate(r: RolloutModel, now: number): Eta {
  if (ROLLOUT_TERMINAL.has(r.state)) return { ms: 0, note: '' };
  if (r.paused) return { ms: null, note: 'paused' };
  if (r.state === 'aborting') return { ms: null, note: 'aborting' };
  if (r.state === 'awaiting-approval') return { ms: null, note: 'waiting for approval' };
  const mean = meanHostMs(r);
  if (mean === null) return { ms: null, note: 'no host finished yet' };
  let ms = r.state === 'waiting' && r.gateUntil !== null ? Math.max(0, r.gateUntil - now) : 0;
  const first = Math.max(0, r.currentWave);
  for (let w = first; w < r.waveSizes.length; w++) {
    // A gate before wave w: the current wave's gate is already counted above.
    if (w > first) {
      if (r.strategy.approval) return { ms: Math.round(ms), note: `until wave ${w + 1} is approved` };
      if (!(r.state === 'waiting' && w === first + 1)) ms += r.strategy.waitMs;
    }
    let work = 0;
    let longest = 0;
    for (const h of r.hosts) {
      if (h.wave !== w || HOST_TERMINAL.has(h.state)) continue;
      const left = h.state === 'running' ? Math.max(0, mean - (now - (h.startedAt ?? now))) : mean;
      work += left;
      if (h.state === 'running') longest = Math.max(longest, left);
    }
    ms += Math.max(longest, work / waveConcurrency(r.strategy.maxConcurrency, r.waveSizes[w]!));
  }
  return { ms: Math.round(ms), note: '' };
}
