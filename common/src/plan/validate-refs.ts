/**
 * Checks the names templates and `bundle:` args refer to, before anything
 * ships: a param or bundle alias a step uses must be declared in the plan.
 * (Facts and labels belong to hosts, so only their syntax is checked here.)
 */
import { isMap, isScalar, isSeq, type Node } from 'yaml';
import { scanTemplate } from './expand-template.js';
import type { PlanSource } from './parse-yaml.js';
import { didYouMean } from './plan-suggest.js';

/** The names a plan declares. */
export interface RefScope {
  params: ReadonlySet<string>;
  bundles: ReadonlySet<string>;
}

function declare(what: string, name: string, known: ReadonlySet<string>): string {
  return `undeclared ${what} "${name}"${didYouMean(name, known)}; declare it under ${what === 'param' ? 'params' : 'bundles'}:`;
}

/** Checks one string scalar; true when it holds a template of ours. */
function checkString(src: PlanSource, node: Node, s: string, scope: RefScope): boolean {
  const t = scanTemplate(s);
  for (const e of t.errors) src.problem(node, e);
  for (const p of t.parts) {
    if (!('ref' in p)) continue;
    const { root, name } = p.ref;
    if (root === 'params' && !scope.params.has(name)) src.problem(node, `${p.ref.source}: ${declare('param', name, scope.params)}`);
    if (root === 'bundles' && !scope.bundles.has(name)) src.problem(node, `${p.ref.source}: ${declare('bundle', name, scope.bundles)}`);
  }
  // `{{ version }}` is left alone as another tool's syntax, but when it names
  // a declared param or bundle it is almost surely a forgotten root.
  for (const body of t.foreign) {
    const root = scope.params.has(body) ? 'params' : scope.bundles.has(body) ? 'bundles' : undefined;
    if (root) src.problem(node, `{{ ${body} }} is not expanded; write {{ ${root}.${body} }}`);
  }
  return t.templated;
}

/**
 * Walks a YAML value (a step's args or a guard) and reports every
 * undeclared name at the string that uses it. Returns the dotted paths
 * (`set[2].value`, as ArgReader names them) of templated strings: their
 * schema checks wait until the values are known on the host.
 */
export function checkRefs(src: PlanSource, node: Node | null, scope: RefScope, path = '', templated = new Set<string>()): Set<string> {
  if (isScalar(node)) {
    if (typeof node.value === 'string' && checkString(src, node, node.value, scope)) templated.add(path);
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => checkRefs(src, src.resolve(item), scope, `${path}[${i}]`, templated));
  } else if (isMap(node)) {
    for (const e of src.entries(node, 'mapping', true) ?? []) {
      const at = path ? `${path}.${e.key}` : e.key;
      // A top-level `bundle: kubeedge` arg names an alias directly. Only top
      // level: deeper down, `bundle:` may be content (a YAML value to write).
      if (path === '' && e.key === 'bundle' && isScalar(e.value) && typeof e.value.value === 'string' && !scanTemplate(e.value.value).templated
        && !scope.bundles.has(e.value.value)) {
        src.problem(e.value, declare('bundle', e.value.value, scope.bundles));
      }
      checkRefs(src, e.value, scope, at, templated);
    }
  }
  return templated;
}
