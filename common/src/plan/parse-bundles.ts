/**
 * The `bundles:` section: which signed bundles (name and exact version) a
 * plan uses, and the alias steps use for each. Two forms:
 *
 * ```yaml
 * bundles:                            # mapping: alias: name:version
 *   kubeedge: kubeedge-cloud:1.22.0
 *
 * bundles:                            # list: as defaults to name when name is a valid alias
 *   - { as: kubeedge, name: kubeedge-cloud, version: 1.22.0 }
 * ```
 */
import { isMap, isSeq, type Node } from 'yaml';
import type { PlanSource } from './parse-yaml.js';
import { REF_NAME } from './parse-params.js';
import { didYouMean } from './plan-suggest.js';
import type { BundleRef } from './types.js';

/** Bundle names as the bundle store spells them. */
export const BUNDLE_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9.+_-]*$/;
const BUNDLE_KEYS = ['as', 'name', 'version'];

function check(src: PlanSource, ref: Partial<BundleRef>, nodes: { as: Node | null; name: Node | null; version: Node | null }): BundleRef | undefined {
  let ok = true;
  if (ref.as !== undefined && !REF_NAME.test(ref.as)) { src.problem(nodes.as, `bundle alias "${ref.as}" must start with a letter or _ and use only letters, digits, _ and -`); ok = false; }
  if (ref.name !== undefined && !BUNDLE_NAME.test(ref.name)) { src.problem(nodes.name, `bundle name "${ref.name}" must match [a-z0-9][a-z0-9._-]*`); ok = false; }
  if (ref.version !== undefined && !VERSION.test(ref.version)) { src.problem(nodes.version, `bundle version "${ref.version}" is not a version (e.g. 1.22.0)`); ok = false; }
  return ok && ref.as !== undefined && ref.name !== undefined && ref.version !== undefined ? (ref as BundleRef) : undefined;
}

function fromList(src: PlanSource, item: Node | null): BundleRef | undefined {
  const entries = src.entries(item, 'a bundle in the list');
  if (!entries) return undefined;
  const get = (k: string) => entries.find((e) => e.key === k);
  for (const e of entries) if (!BUNDLE_KEYS.includes(e.key)) src.problem(e.keyNode, `unknown key "${e.key}" in bundle${didYouMean(e.key, BUNDLE_KEYS)}; use as, name, version`);
  const read = (k: string) => {
    const e = get(k);
    if (!e) return undefined;
    return src.text(e.value, `bundle ${k}`, { allowNumbers: true });
  };
  const name = read('name');
  const version = read('version');
  let as = read('as');
  if (!get('name')) src.problem(item, 'bundle needs a name');
  if (!get('version')) src.problem(item, 'bundle needs a version (plans pin exact versions)');
  if (!get('as') && name !== undefined) {
    if (REF_NAME.test(name)) as = name;
    else src.problem(item, `bundle "${name}" needs as: (its name is not usable in {{ bundles.… }})`);
  }
  return check(src, { as, name, version }, { as: get('as')?.value ?? item, name: get('name')?.value ?? item, version: get('version')?.value ?? item });
}

/** Reads `bundles:`; problems go to `src`. Aliases must be unique. */
export function parseBundles(src: PlanSource, node: Node | null): BundleRef[] {
  if (src.isNull(node)) return [];
  const found: Array<{ ref: BundleRef; node: Node | null }> = [];
  if (isMap(node)) {
    for (const e of src.entries(node, 'bundles') ?? []) {
      const text = src.text(e.value, `bundle "${e.key}"`, { allowNumbers: true });
      if (text === undefined) continue;
      const i = text.indexOf(':');
      if (i <= 0 || i === text.length - 1) { src.problem(e.value, `bundle "${e.key}" must be name:version (got "${text}")`); continue; }
      const ref = check(src, { as: e.key, name: text.slice(0, i), version: text.slice(i + 1) }, { as: e.keyNode, name: e.value, version: e.value });
      if (ref) found.push({ ref, node: e.keyNode });
    }
  } else if (isSeq(node)) {
    for (const item of node.items) {
      const n = src.resolve(item);
      const ref = fromList(src, n);
      if (ref) found.push({ ref, node: n });
    }
  } else {
    src.problem(node, 'bundles must be a mapping (alias: name:version) or a list of {as, name, version}');
  }
  const out: BundleRef[] = [];
  const first = new Map<string, Node | null>();
  for (const f of found) {
    const prev = first.get(f.ref.as);
    if (prev !== undefined) { src.problem(f.node, `bundle alias "${f.ref.as}" is used twice (first at line ${src.pos(prev).line})`); continue; }
    first.set(f.ref.as, f.node);
    out.push(f.ref);
  }
  return out;
}
