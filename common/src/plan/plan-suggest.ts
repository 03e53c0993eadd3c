/**
 * "Did you mean …?" for plan typos: step types, keys, param and bundle
 * names. A field tech reading `unknown step type "image.improt"` should not
 * have to look up the list of step types.
 */
import { editDistance } from '../edit-distance.js';

/**
 * The candidate closest to `name`, if it is close enough to be a typo
 * (about one edit per three letters, at most three); ties go to the first
 * in sorted order so messages are stable.
 */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of [...candidates].sort()) {
    const d = c.toLowerCase() === name.toLowerCase() ? 0.5 : editDistance(name, c);
    if (d < bestD) { best = c; bestD = d; }
  }
  return bestD <= limit ? best : undefined;
}

/** ` (did you mean "x"?)` or nothing: append to a message about an unknown name. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const c = closest(name, candidates);
  return c === undefined ? '' : ` (did you mean "${c}"?)`;
}
