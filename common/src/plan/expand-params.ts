/**
 * Parameter values for one rollout: what the operator passed (as text, e.g.
 * `--param version=1.22.0`) checked against the plan's declared params and
 * merged with their defaults.
 */
import { parse as parseYaml } from 'yaml';
import { ErrorCode, FerryError } from '../errors.js';
import { didYouMean } from './plan-suggest.js';
import type { Plan, PlanParam } from './types.js';

/** `[a, b]` / `{k: v}` are read as YAML flow collections; anything else by the simple forms below. */
function flow(text: string): { value?: unknown; error?: string } {
  try {
    return { value: parseYaml(text) as unknown };
  } catch (e) {
    return { error: `is not valid YAML: ${(e as Error).message.split('\n')[0]}` };
  }
}

/**
 * Reads one param value given as text, by the param's type:
 * int `42`; bool `true`/`false`; list `a,b,c` or `[a, b]`; map `k=v,k2=v2` or `{k: v}`.
 */
export function parseParamValue(param: Pick<PlanParam, 'name' | 'type'>, text: string): { value?: unknown; error?: string } {
  const t = text.trim();
  switch (param.type) {
    case 'string':
      return { value: text };
    case 'int':
      return /^-?\d+$/.test(t) && Number.isSafeInteger(Number(t)) ? { value: Number(t) } : { error: `must be a whole number (got "${text}")` };
    case 'bool':
      return t === 'true' || t === 'false' ? { value: t === 'true' } : { error: `must be true or false (got "${text}")` };
    case 'list': {
      if (t.startsWith('[')) {
        const r = flow(t);
        return r.error || Array.isArray(r.value) ? r : { error: 'must be a list' };
      }
      return { value: t === '' ? [] : t.split(',').map((s) => s.trim()) };
    }
    case 'map': {
      if (t.startsWith('{')) {
        const r = flow(t);
        return r.error || (r.value !== null && typeof r.value === 'object' && !Array.isArray(r.value)) ? r : { error: 'must be a map' };
      }
      const out: Record<string, string> = {};
      for (const kv of t === '' ? [] : t.split(',')) {
        const i = kv.indexOf('=');
        if (i <= 0) return { error: `must be k=v pairs separated by commas (got "${kv.trim()}")` };
        out[kv.slice(0, i).trim()] = kv.slice(i + 1).trim();
      }
      return { value: out };
    }
  }
}

/**
 * Typed values for every declared param: given values parsed by type,
 * defaults for the rest. Refuses unknown names (typos), missing required
 * params and values of the wrong type — all of them in one FerryError
 * (InvalidArgument), so the operator fixes the command line once.
 */
export function resolveParams(plan: Plan, given: Readonly<Record<string, string>>): Record<string, unknown> {
  const problems: string[] = [];
  const declared = new Map(plan.params.map((p) => [p.name, p]));
  for (const name of Object.keys(given).sort()) {
    if (!declared.has(name)) problems.push(`unknown param "${name}"${didYouMean(name, declared.keys())}; plan "${plan.name}" declares ${declared.size ? [...declared.keys()].sort().join(', ') : 'no params'}`);
  }
  const out: Record<string, unknown> = {};
  for (const p of plan.params) {
    if (Object.hasOwn(given, p.name)) {
      const r = parseParamValue(p, given[p.name]!);
      if (r.error) problems.push(`param "${p.name}" (${p.type}) ${r.error}`);
      else out[p.name] = r.value;
    } else if (p.default !== undefined) {
      out[p.name] = structuredClone(p.default); // callers may mutate their copy; the plan must not change
    } else if (p.required) {
      problems.push(`param "${p.name}" is required${p.description ? ` (${p.description})` : ''}`);
    }
  }
  if (problems.length) {
    throw new FerryError(
      ErrorCode.InvalidArgument,
      `plan "${plan.name}": ${problems.length} problem${problems.length === 1 ? '' : 's'} with params:\n  ${problems.join('\n  ')}`,
      'pass params as name=value; lists as a,b,c and maps as k=v,k2=v2',
    );
  }
  return out;
}
