/**
 * Reads a V8 .heapsnapshot and sums self sizes by kind of object, so two
 * snapshots (without and with N sessions) say where per-session heap goes.
 */
import { readFileSync } from 'node:fs';

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export type HeapSummary = Map<string, { count: number; bytes: number }>;

/** Self size and count per group: objects and closures by constructor/function name, everything else by V8 node type. */
export function summarizeSnapshot(path: string): HeapSummary {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as RawSnapshot;
  const fields = raw.snapshot.meta.node_fields;
  const types = raw.snapshot.meta.node_types[0];
  const width = fields.length;
  const fType = fields.indexOf('type');
  const fName = fields.indexOf('name');
  const fSize = fields.indexOf('self_size');
  const out: HeapSummary = new Map();
  for (let i = 0; i < raw.nodes.length; i += width) {
    const type = types[raw.nodes[i + fType]!] ?? '?';
    const name = raw.strings[raw.nodes[i + fName]!] ?? '?';
    let key: string;
    if (type === 'object' || type === 'native') key = `${name.slice(0, 60)}`;
    else if (type === 'closure') key = `(closure) ${name.slice(0, 50) || '(anonymous)'}`;
    else if (type === 'hidden' || type === 'synthetic') key = `(${type}) ${name.slice(0, 40)}`;
    else key = `(${type})`;
    const e = out.get(key) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += raw.nodes[i + fSize]!;
    out.set(key, e);
  }
  return out;
}

export interface HeapGrowth {
  what: string;
  countDelta: number;
  bytesDelta: number;
}

/** Groups that grew from `before` to `after`, largest first. */
export function heapGrowth(before: HeapSummary, after: HeapSummary, top = 20): HeapGrowth[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  const rows: HeapGrowth[] = [];
  for (const k of keys) {
    const b = before.get(k) ?? { count: 0, bytes: 0 };
    const a = after.get(k) ?? { count: 0, bytes: 0 };
    rows.push({ what: k, countDelta: a.count - b.count, bytesDelta: a.bytes - b.bytes });
  }
  return rows.sort((x, y) => y.bytesDelta - x.bytesDelta).slice(0, top);
}
