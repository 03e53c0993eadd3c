/**
 * Runs a step type's schema over the step's args and puts each problem at
 * the YAML node it is about: the schema speaks in dotted paths
 * (`set[2].path`), people need `plan.yaml:31:17`.
 */
import { isSeq, type Node } from 'yaml';
import type { PlanSource } from './parse-yaml.js';
import type { StepSchema } from './step-schema.js';

interface Located {
  /** The deepest node the path reached. */
  node: Node | null;
  /** The key node of the last mapping entry reached, when the path ended on one. */
  key?: Node;
  /** True when the whole path was found. */
  exact: boolean;
}

/** `set[2].path` → ["set", 2, "path"]. */
function segments(path: string): Array<string | number> {
  const out: Array<string | number> = [];
  for (const m of path.matchAll(/\[(\d+)\]|([^.[\]]+)/g)) out.push(m[1] !== undefined ? Number(m[1]) : m[2]!);
  return out;
}

/**
 * Follows a schema path through YAML nodes. Keys that themselves contain
 * dots (`a.b: 1` in a map the schema walks) are found by joining segments
 * when the single segment is not a key.
 */
export function locate(src: PlanSource, root: Node | null, path: string): Located {
  const segs = segments(path);
  let cur: Node | null = root;
  let key: Node | undefined;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    if (typeof seg === 'number') {
      if (!isSeq(cur) || seg >= cur.items.length) return { node: cur, exact: false };
      cur = src.resolve(cur.items[seg]);
      key = undefined;
      continue;
    }
    const entries = src.entries(cur, 'mapping', true);
    if (!entries) return { node: cur, exact: false };
    let joined = seg;
    let hit = entries.find((e) => e.key === joined);
    for (let j = i + 1; !hit && j < segs.length && typeof segs[j] === 'string'; j++) {
      joined += `.${segs[j] as string}`;
      hit = entries.find((e) => e.key === joined);
      if (hit) i = j;
    }
    if (!hit) return { node: cur, exact: false };
    cur = hit.value;
    key = hit.keyNode;
  }
  return { node: cur, key, exact: true };
}

/** True when `path` is `base` or inside it. */
function within(path: string, base: string): boolean {
  return path === base || base === '' || path.startsWith(`${base}.`) || path.startsWith(`${base}[`);
}

/**
 * Parses `args` with `schema`, reporting each problem at its node:
 * unknown arguments at their key, bad values at the value, missing ones at
 * the mapping that lacks them (or at `anchor`, the step's `type`, when the
 * step has no `args:` at all). Problems under templated strings are left to
 * the agent, which parses the args again once the templates are expanded
 * (except unknown arguments: a misspelt key is wrong whatever its value).
 */
export function validateArgs(
  src: PlanSource,
  schema: StepSchema<unknown>,
  args: Record<string, unknown>,
  argsNode: Node | null,
  anchor: Node,
  templated: ReadonlySet<string>,
): void {
  let problems;
  try {
    problems = schema.parse(args).problems;
  } catch (e) {
    // A schema bug must not hide the plan's other problems.
    src.problem(argsNode ?? anchor, `checking args for ${schema.type} failed: ${(e as Error).message}`);
    return;
  }
  for (const p of problems) {
    // An unknown key is wrong whatever its value; other problems under a
    // template depend on the value, known only on the host.
    const unknownKey = p.message.startsWith('unknown argument');
    if (!unknownKey && [...templated].some((t) => within(p.path, t))) continue;
    const where = p.path === '' ? argsNode : (() => {
      const l = locate(src, argsNode, p.path);
      if (!l.exact) return l.node;
      if (unknownKey || src.isNull(l.node)) return l.key ?? l.node;
      return l.node;
    })();
    src.problem(where ?? anchor, p.path ? `args.${p.path}: ${p.message}` : `args: ${p.message}`);
  }
}
