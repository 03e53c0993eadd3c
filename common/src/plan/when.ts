/**
 * Step conditions: a step runs on a host only when every label and every
 * fact in its `when` matches. Deliberately no expressions (no `or`, no
 * regex): a condition an operator can read at a glance, and one the
 * controller can show as "skipped: label site is plant-3, step wants plant-7".
 */
import type { WhenCondition } from './types.js';

/**
 * The value at a dotted path in nested host facts (`os.id`,
 * `disks.0.size` or `disks[0].size`); undefined when any part is missing.
 * Own properties only, so a path like `constructor` never reaches into the
 * prototype.
 */
export function factAt(facts: unknown, path: string): unknown {
  let cur: unknown = facts;
  for (const part of path.replace(/\[(\d+)\]/g, '.$1').split('.')) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Facts compare as text, so `cores: 4` in a plan matches the number 4 and `systemd: true` matches true. */
function factText(v: unknown): string | undefined {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
}

/**
 * Why a host does not match `cond`, in one line for people; undefined when
 * it matches. Labels are checked first, in key order, so the reason is stable.
 */
export function whenMismatch(cond: WhenCondition | undefined, labels: Readonly<Record<string, string>>, facts: unknown): string | undefined {
  if (!cond) return undefined;
  for (const [k, want] of Object.entries(cond.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const have = Object.hasOwn(labels, k) ? labels[k] : undefined;
    if (have === undefined) return `host has no label "${k}", step wants ${k}=${want}`;
    if (have !== want) return `label ${k} is "${have}", step wants "${want}"`;
  }
  for (const [path, want] of Object.entries(cond.facts ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const have = factText(factAt(facts, path));
    if (have === undefined) return `host has no fact "${path}", step wants ${path}=${want}`;
    if (have !== want) return `fact ${path} is "${have}", step wants "${want}"`;
  }
  return undefined;
}

/** True when the host's labels and facts satisfy `cond` (an absent condition matches every host). */
export function matchesWhen(cond: WhenCondition | undefined, labels: Readonly<Record<string, string>>, facts: unknown): boolean {
  return whenMismatch(cond, labels, facts) === undefined;
}
