import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './proc.js';

/** docs/json.md's field tables: record kind (the `## heading`) to its field names. */
export function documentedKinds(): Map<string, string[]> {
  const kinds = new Map<string, string[]>();
  let kind: string | undefined;
  for (const line of readFileSync(join(repoRoot(), 'docs', 'json.md'), 'utf8').split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) kind = /^\S+$/.test(h[1]!) ? h[1] : undefined;
    const row = /^\| `([A-Za-z]+)` \|/.exec(line);
    if (row && kind) kinds.set(kind, [...(kinds.get(kind) ?? []), row[1]!]);
  }
  return kinds;
}

/** Asserts every record has exactly the fields docs/json.md documents for `kind` (and that there is one). */
export function assertConforms(docs: Map<string, string[]>, kind: string, recs: ReadonlyArray<object | undefined>): void {
  const fields = docs.get(kind);
  assert.ok(fields, `docs/json.md has no section "## ${kind}"`);
  assert.ok(recs.length > 0, `no ${kind} record to check`);
  for (const r of recs) {
    assert.ok(r, `${kind}: no record`);
    assert.deepEqual(Object.keys(r).sort(), [...fields].sort(), `${kind}: ${JSON.stringify(r)}`);
  }
}

/**
 * Kinds whose records only a misbehaving host produces; their shapes are
 * checked where the misbehaviour is staged (test/integration/run-cancel.test.ts).
 */
export const KINDS_CHECKED_ELSEWHERE = ['exec.link', 'run.link'];
