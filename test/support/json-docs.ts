import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './proc.js';

/** One documented field: its name and the types its value may have (`number|null` → ['number', 'null']). */
export interface DocField {
  name: string;
  types: string[];
}

/** docs/json.md's field tables: record kind (the `## heading`) to its fields and their types. */
export function documentedKinds(): Map<string, DocField[]> {
  const kinds = new Map<string, DocField[]>();
  let kind: string | undefined;
  for (const line of readFileSync(join(repoRoot(), 'docs', 'json.md'), 'utf8').split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) kind = /^\S+$/.test(h[1]!) ? h[1] : undefined;
    // | `field` | type | meaning |   (a `|` inside the type is written `\|`)
    const row = /^\| `([A-Za-z][A-Za-z0-9]*)` \| ((?:[^|\\]|\\\|)+) \|/.exec(line);
    if (row && kind) kinds.set(kind, [...(kinds.get(kind) ?? []), { name: row[1]!, types: row[2]!.trim().split('\\|').map((t) => t.trim()) }]);
    // A field row this parser cannot read would drop the field from the check without a word.
    else if (kind && line.startsWith('| `')) throw new Error(`docs/json.md, "## ${kind}": cannot read the field row ${line}`);
  }
  return kinds;
}

/** The documented type word a JSON value has (`string[]`, `object[]` for arrays of one kind). */
function typeOf(v: unknown): string[] {
  if (v === null) return ['null'];
  if (Array.isArray(v)) {
    // An empty array is every kind of array.
    if (v.every((x) => typeof x === 'string')) return v.length ? ['string[]'] : ['string[]', 'object[]'];
    if (v.every((x) => x !== null && typeof x === 'object' && !Array.isArray(x))) return ['object[]'];
    return ['array'];
  }
  return [typeof v];
}

/**
 * Asserts every record has exactly the fields docs/json.md documents for
 * `kind` (and that there is one), each value of a documented type.
 */
export function assertConforms(docs: Map<string, DocField[]>, kind: string, recs: ReadonlyArray<object | undefined>): void {
  const fields = docs.get(kind);
  assert.ok(fields, `docs/json.md has no section "## ${kind}"`);
  assert.ok(recs.length > 0, `no ${kind} record to check`);
  for (const r of recs) {
    assert.ok(r, `${kind}: no record`);
    assert.deepEqual(Object.keys(r).sort(), fields.map((f) => f.name).sort(), `${kind}: ${JSON.stringify(r)}`);
    for (const f of fields) {
      const v = (r as Record<string, unknown>)[f.name];
      assert.ok(typeOf(v).some((t) => f.types.includes(t)), `${kind}.${f.name} is documented as ${f.types.join('|')}, got ${JSON.stringify(v)}`);
    }
  }
}

/**
 * Kinds whose records only a misbehaving host produces; their shapes are
 * checked where the misbehaviour is staged (test/integration/run-cancel.test.ts);
 * registry records need real image archives, checked in registry-pull.test.ts;
 * migrate-store needs a PostgreSQL server, checked in ha-operations.test.ts.
 */
/** Agent release records need the real single binaries (dist/), checked in agent-release.test.ts. */
export const AGENT_RELEASE_KINDS = ['agent-release', 'agent-release.added', 'agent-release.removed'];
export const KINDS_CHECKED_ELSEWHERE = ['exec.link', 'run.link', 'publication', 'publication.tag', 'relay', 'controller-migrate-store', ...AGENT_RELEASE_KINDS];
