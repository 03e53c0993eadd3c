/**
 * A step's `when:` — which hosts it runs on:
 *
 * ```yaml
 * when:
 *   labels: { role: edge, site: plant-7 }     # every label must equal
 *   facts:  { os.id: ubuntu, arch: arm64 }    # every fact (dotted path, ips[0] for list items) must equal, as text
 * ```
 */
import type { Node } from 'yaml';
import type { PlanSource } from './parse-yaml.js';
import { didYouMean } from './plan-suggest.js';
import type { WhenCondition } from './types.js';

const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?$/;
const FACT_PATH = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+|\[\d+\])*$/;
const WHEN_KEYS = ['labels', 'facts'];

function pairs(src: PlanSource, node: Node | null, what: 'labels' | 'facts'): Record<string, string> | undefined {
  const entries = src.entries(node, `when.${what}`);
  if (!entries) return undefined;
  const out: Record<string, string> = {};
  for (const e of entries) {
    if (what === 'labels' && !LABEL_KEY.test(e.key)) src.problem(e.keyNode, `label key "${e.key}" is invalid (1-64 of A-Z a-z 0-9 . _ / -)`);
    if (what === 'facts' && !FACT_PATH.test(e.key)) src.problem(e.keyNode, `fact path "${e.key}" is invalid (names separated by dots, e.g. os.id)`);
    // Numbers and booleans are fine (`cores: 4`, `systemd: true`): conditions compare as text.
    const v = src.text(e.value, `when.${what}.${e.key}`, { allowNumbers: true, allowBool: true });
    if (v !== undefined) out[e.key] = v;
  }
  return out;
}

/** Reads `when:`; undefined when absent or wrong (problems go to `src`). */
export function parseWhen(src: PlanSource, node: Node | null): WhenCondition | undefined {
  if (src.isNull(node)) return undefined;
  const entries = src.entries(node, 'when');
  if (!entries) return undefined;
  const cond: WhenCondition = {};
  for (const e of entries) {
    if (e.key === 'labels' || e.key === 'facts') {
      const p = pairs(src, e.value, e.key);
      if (p) cond[e.key] = p;
    } else {
      src.problem(e.keyNode, `unknown key "${e.key}" in when${didYouMean(e.key, WHEN_KEYS)}; use labels or facts`);
    }
  }
  return cond;
}
