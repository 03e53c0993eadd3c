/**
 * "Did you mean" for misspelt commands and flags: the closest known word by
 * edit distance (with adjacent swaps), if it is close enough to be a typo.
 */

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

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
