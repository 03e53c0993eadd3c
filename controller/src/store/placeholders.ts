/**
 * Turns the store's portable `?` placeholders into PostgreSQL's `$1, $2, …`.
 * A `?` inside a string literal ('it''s?'), a quoted identifier ("a?") or a
 * comment is text, not a placeholder, and is left alone. The translation is
 * done once per statement text and cached (statements are a small, mostly
 * fixed set; IN-lists built per call are bounded by clearing the cache when
 * it grows past `MAX_CACHED`).
 */
const MAX_CACHED = 2000;
const cache = new Map<string, string>();

/** `sql` with each bare `?` numbered in order, as PostgreSQL expects. */
export function numberPlaceholders(sql: string): string {
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  let out = '';
  let n = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      // Copy the quoted run through its closing quote; a doubled quote is an escaped one.
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) break;
        if (sql[j] === c) {
          if (sql[j + 1] === c) j += 2;
          else break;
        } else j++;
      }
      out += sql.slice(i, j + 1);
      i = j + 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const j = end < 0 ? sql.length : end;
      out += sql.slice(i, j);
      i = j;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      const j = end < 0 ? sql.length : end + 2;
      out += sql.slice(i, j);
      i = j;
    } else if (c === '?') {
      out += `$${++n}`;
      i++;
    } else {
      out += c;
      i++;
    }
  }
  if (cache.size >= MAX_CACHED) cache.clear();
  cache.set(sql, out);
  return out;
}
