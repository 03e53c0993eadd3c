/**
 * Wave sizing. Each entry of `strategy.waves` is CUMULATIVE: the number (or
 * percentage) of all targets that are done by the end of that wave. So
 * `[1, "10%", "50%", "100%"]` over 200 hosts is waves of 1, 19, 80 and 100
 * hosts. Cumulative entries read the way operators talk ("10% of the fleet
 * by tonight") and a list that ends in "100%" obviously covers everything.
 *
 * Rules, each tested:
 * - Percentages round UP (ceil), so "1%" of 10 hosts is 1 host, not 0.
 * - A declared wave is never empty while hosts remain: if its cumulative
 *   target does not exceed what earlier waves already took, it gets 1 host.
 * - A wave never takes more than the hosts that remain (counts are capped).
 * - The last declared wave takes every remaining host, whatever its entry
 *   says: a rollout always ends having covered all its targets.
 * - Declared waves left with no hosts (small fleets) are dropped.
 */
import { ceilOf, type Amount } from './amount.js';

/** Sizes of the waves for `total` targets; sums to `total` (an empty list for 0 targets). */
export function waveSizes(waves: readonly Amount[], total: number): number[] {
  const sizes: number[] = [];
  let done = 0;
  for (let i = 0; i < waves.length && done < total; i++) {
    const last = i === waves.length - 1;
    const cumulative = last ? total : Math.min(total, ceilOf(waves[i]!, total));
    const size = Math.min(total - done, Math.max(1, cumulative - done));
    sizes.push(size);
    done += size;
  }
  return sizes;
}

/** Wave index (0-based) of every target in order: the first sizes[0] targets are wave 0, and so on. */
export function assignWaves(sizes: readonly number[]): number[] {
  return sizes.flatMap((n, w) => Array.from({ length: n }, () => w));
}

/**
 * Hosts of one wave that may run at once: `maxConcurrency` of the wave
 * (percentages of the wave's size, rounded up), at least 1; no limit means
 * the whole wave at once.
 */
export function waveConcurrency(maxConcurrency: Amount | null, waveSize: number): number {
  if (!maxConcurrency) return Math.max(1, waveSize);
  return Math.max(1, ceilOf(maxConcurrency, waveSize));
}
