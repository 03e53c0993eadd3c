/**
 * "Did you mean" for misspelt commands and flags: the closest known word by
 * edit distance (with adjacent swaps), if it is close enough to be a typo.
 */

import { editDistance } from '../edit-distance.js';


/**
 * The known words closest to `word`: within a third of its length (at least
 * 1, at most 3 edits), or of which it is a prefix. Best first.
 */
export function suggest(word: string, known: readonly string[]): string[] {
  const w = word.toLowerCase();
  const limit = Math.min(3, Math.max(1, Math.floor(w.length / 3)));
  const scored = known
    .map((k) => ({ k, d: editDistance(w, k.toLowerCase()) }))
    .filter(({ k, d }) => d <= limit || (w.length >= 2 && k.startsWith(w)));
  scored.sort((x, y) => x.d - y.d || x.k.localeCompare(y.k));
  return [...new Set(scored.map((s) => s.k))].slice(0, 3);
}

/** ' — did you mean "x"?' or '' when nothing is close. */
export function didYouMean(word: string, known: readonly string[]): string {
  const s = suggest(word, known);
  if (!s.length) return '';
  return ` — did you mean ${s.map((x) => `"${x}"`).join(' or ')}?`;
}
