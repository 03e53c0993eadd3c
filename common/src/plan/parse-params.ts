/**
 * The `params:` section: typed plan parameters with defaults. Two forms:
 *
 * ```yaml
 * params:
 *   kubeedge_version: 1.22.0          # shorthand: the default, type inferred (string)
 *   replicas: 3                       # int
 *   cloudcore_ip: ~                   # shorthand without a default: a required string
 *   images:                           # full form
 *     type: list
 *     default: [cloudcore, admission]
 *     description: images to pre-import
 *   site_token: { type: string, required: true }
 * ```
 *
 * Types are string, int, bool, list and map. A map default needs the full
 * form (a mapping value always is the full form). A param without a default
 * is required unless it says `required: false`; a required param with a
 * default is a contradiction and reported.
 */
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import type { Entry, PlanSource } from './parse-yaml.js';
import { didYouMean } from './plan-suggest.js';
import type { PlanParam } from './types.js';

/** Param names and bundle aliases: what can follow `params.` / `bundles.` in a template. */
export const REF_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

const TYPES: ReadonlyArray<PlanParam['type']> = ['string', 'int', 'bool', 'list', 'map'];
const PARAM_KEYS = ['type', 'default', 'required', 'description'];

/** The type a shorthand default implies; versions like `1.10` and modes like `0755` count as strings. */
function inferType(src: PlanSource, node: Node): PlanParam['type'] | undefined {
  if (isSeq(node)) return 'list';
  if (isMap(node)) return 'map';
  if (!isScalar(node)) return undefined;
  const v = node.value;
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) && src.plain(node) === v ? 'int' : 'string';
  return typeof v === 'string' ? 'string' : undefined;
}

/** The default read as `type`, or a problem at the default's node. */
function readDefault(src: PlanSource, node: Node, type: PlanParam['type'], name: string): unknown {
  const bad = (what: string) => { src.problem(node, `default of param "${name}" must be ${what}`); return undefined; };
  switch (type) {
    case 'string':
      if (isScalar(node) && typeof node.value === 'number') return src.plain(node) === node.value ? String(node.value) : src.plain(node);
      return isScalar(node) && typeof node.value === 'string' ? node.value : bad('a string');
    case 'int':
      return isScalar(node) && typeof node.value === 'number' && Number.isInteger(node.value) ? node.value : bad('a whole number');
    case 'bool':
      return isScalar(node) && typeof node.value === 'boolean' ? node.value : bad('true or false');
    case 'list':
      return isSeq(node) ? src.plain(node) : bad('a list');
    case 'map':
      return isMap(node) ? src.plain(node) : bad('a mapping');
  }
}

function fullForm(src: PlanSource, e: Entry, entries: Entry[]): PlanParam | undefined {
  const get = (k: string) => entries.find((x) => x.key === k);
  for (const x of entries) if (!PARAM_KEYS.includes(x.key)) src.problem(x.keyNode, `unknown key "${x.key}" in param "${e.key}"${didYouMean(x.key, PARAM_KEYS)}; use ${PARAM_KEYS.join(', ')}`);
  const typeE = get('type');
  const defE = get('default');
  const hasDefault = defE !== undefined && !src.isNull(defE.value);
  let type: PlanParam['type'] | undefined = 'string';
  if (typeE) {
    const t = src.text(typeE.value, `type of param "${e.key}"`);
    type = TYPES.find((x) => x === t);
    if (t !== undefined && !type) src.problem(typeE.value ?? typeE.keyNode, `type of param "${e.key}" must be one of ${TYPES.join(', ')} (got "${t}")${didYouMean(t, TYPES)}`);
  } else if (hasDefault) {
    type = inferType(src, defE.value!) ?? 'string';
  }
  const def = hasDefault && type ? readDefault(src, defE.value!, type, e.key) : undefined;
  let required = !hasDefault;
  const reqE = get('required');
  if (reqE) {
    if (isScalar(reqE.value) && typeof reqE.value.value === 'boolean') required = reqE.value.value;
    else src.problem(reqE.value ?? reqE.keyNode, `required of param "${e.key}" must be true or false`);
    if (required && hasDefault) src.problem(reqE.value ?? reqE.keyNode, `param "${e.key}" is required and has a default; drop one of them`);
  }
  const descE = get('description');
  const description = descE ? src.text(descE.value, `description of param "${e.key}"`) : undefined;
  if (!type) return undefined;
  return { name: e.key, type, required: required && !hasDefault, ...(def !== undefined && { default: def }), ...(description !== undefined && { description }) };
}

/** Reads `params:`; problems go to `src`. */
export function parseParams(src: PlanSource, node: Node | null): PlanParam[] {
  if (src.isNull(node)) return [];
  const out: PlanParam[] = [];
  for (const e of src.entries(node, 'params') ?? []) {
    if (!REF_NAME.test(e.key)) {
      src.problem(e.keyNode, `param name "${e.key}" must start with a letter or _ and use only letters, digits, _ and -`);
      continue;
    }
    if (isMap(e.value)) {
      const p = fullForm(src, e, src.entries(e.value, `param "${e.key}"`) ?? []);
      if (p) out.push(p);
    } else if (src.isNull(e.value)) {
      out.push({ name: e.key, type: 'string', required: true });
    } else {
      const type = inferType(src, e.value!);
      if (!type) { src.problem(e.value, `param "${e.key}" has a default Ferry cannot read; use the full form with type:`); continue; }
      out.push({ name: e.key, type, required: false, default: readDefault(src, e.value!, type, e.key) });
    }
  }
  return out;
}
