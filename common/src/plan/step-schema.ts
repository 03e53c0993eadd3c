/**
 * Argument schemas for step types. They live in common because both sides
 * need them: the controller validates plans when they are pushed (every
 * problem, with file:line:col), the agent parses args again before running.
 * Each step type has one schema module in common/src/plan/steps/ and one
 * executor module in agent/src/steps/.
 */

export interface ArgProblem {
  /** Dotted path inside the step's args, e.g. "set[2].path" ("" for the args as a whole). */
  path: string;
  message: string;
}

export interface StepSchema<A> {
  readonly type: string;
  /** One line for `ferry plan validate --help-steps` and docs. */
  readonly summary: string;
  parse(raw: Record<string, unknown>): { args?: A; problems: ArgProblem[] };
}

/**
 * A small reader for raw args that records problems instead of throwing, so
 * one pass reports everything. Unknown keys are problems too (typos in plans
 * must not be silently ignored).
 */
export class ArgReader {
  readonly problems: ArgProblem[] = [];
  private readonly used = new Set<string>();

  constructor(private readonly raw: Record<string, unknown>, private readonly prefix = '') {}

  private at(key: string): string {
    return this.prefix ? `${this.prefix}.${key}` : key;
  }

  problem(key: string, message: string): void {
    this.problems.push({ path: this.at(key), message });
  }

  private get(key: string, required: boolean, what: string): unknown {
    this.used.add(key);
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (required) this.problem(key, `missing required ${what} "${key}"`);
      return undefined;
    }
    return v;
  }

  string(key: string, opts: { required?: boolean; default?: string } = {}): string | undefined {
    const v = this.get(key, Boolean(opts.required), 'string');
    if (v === undefined) return opts.default;
    if (typeof v !== 'string' && typeof v !== 'number') { this.problem(key, `"${key}" must be a string`); return undefined; }
    return String(v);
  }

  int(key: string, opts: { required?: boolean; default?: number; min?: number; max?: number } = {}): number | undefined {
    const v = this.get(key, Boolean(opts.required), 'number');
    if (v === undefined) return opts.default;
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) { this.problem(key, `"${key}" must be a whole number`); return undefined; }
    if (opts.min !== undefined && n < opts.min) this.problem(key, `"${key}" must be at least ${opts.min}`);
    if (opts.max !== undefined && n > opts.max) this.problem(key, `"${key}" must be at most ${opts.max}`);
    return n;
  }

  bool(key: string, opts: { default?: boolean } = {}): boolean | undefined {
    const v = this.get(key, false, 'boolean');
    if (v === undefined) return opts.default;
    if (typeof v !== 'boolean') { this.problem(key, `"${key}" must be true or false`); return undefined; }
    return v;
  }

  oneOf<T extends string>(key: string, values: readonly T[], opts: { required?: boolean; default?: T } = {}): T | undefined {
    const v = this.string(key, { required: opts.required });
    if (v === undefined) return opts.default;
    if (!values.includes(v as T)) { this.problem(key, `"${key}" must be one of ${values.join(', ')} (got "${v}")`); return undefined; }
    return v as T;
  }

  stringList(key: string, opts: { required?: boolean; nonEmpty?: boolean } = {}): string[] | undefined {
    const v = this.get(key, Boolean(opts.required), 'list');
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' && typeof x !== 'number')) {
      this.problem(key, `"${key}" must be a list of strings`);
      return undefined;
    }
    if (opts.nonEmpty && v.length === 0) this.problem(key, `"${key}" must not be empty`);
    return v.map(String);
  }

  stringMap(key: string): Record<string, string> | undefined {
    const v = this.get(key, false, 'mapping');
    if (v === undefined) return undefined;
    if (typeof v !== 'object' || Array.isArray(v) || Object.values(v as object).some((x) => typeof x === 'object' && x !== null)) {
      this.problem(key, `"${key}" must be a mapping of strings`);
      return undefined;
    }
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)]));
  }

  /** Any value (e.g. a YAML value to set); presence checked only. */
  any(key: string, opts: { required?: boolean } = {}): unknown {
    return this.get(key, Boolean(opts.required), 'value');
  }

  /** A list of mappings, each read by `each` with its own reader (problems keep their index path). */
  objects<T>(key: string, each: (r: ArgReader) => T | undefined, opts: { required?: boolean } = {}): T[] | undefined {
    const v = this.get(key, Boolean(opts.required), 'list');
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) { this.problem(key, `"${key}" must be a list`); return undefined; }
    const out: T[] = [];
    v.forEach((item, i) => {
      if (!item || typeof item !== 'object' || Array.isArray(item)) { this.problem(`${key}[${i}]`, 'must be a mapping'); return; }
      const r = new ArgReader(item as Record<string, unknown>, this.at(`${key}[${i}]`));
      const t = each(r);
      r.done();
      this.problems.push(...r.problems);
      if (t !== undefined) out.push(t);
    });
    return out;
  }

  /** Reports keys nobody asked for. Call once after reading everything. */
  done(): void {
    for (const k of Object.keys(this.raw)) if (!this.used.has(k)) this.problem(k, `unknown argument "${k}"`);
  }
}

/** Builds a schema from a reader function: the common shape of every step schema module. */
export function schema<A>(type: string, summary: string, read: (r: ArgReader) => A): StepSchema<A> {
  return {
    type, summary,
    parse(raw) {
      const r = new ArgReader(raw);
      const args = read(r);
      r.done();
      return r.problems.length ? { problems: r.problems } : { args, problems: [] };
    },
  };
}
