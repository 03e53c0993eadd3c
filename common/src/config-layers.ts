import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from './duration.js';
import { ErrorCode, FerryError } from './errors.js';

/** A raw setting as it comes from a flag, a variable or the file: a string, or a list for repeatable ones. */
export type RawValue = string | string[];

/** The levels pino knows, in the order people read them. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/**
 * The settings of one program merged from defaults < `--config FILE` (YAML,
 * keys named like the flags) < environment < flags, with typed readers that
 * collect problems instead of throwing, so that `check()` can report every
 * problem in one error. Used by the controller's and the agent's config.
 */
export class LayeredSettings<K extends string> {
  /** Problems found so far; `check()` throws them all at once. */
  readonly problems: string[] = [];
  /** The merged values, highest layer winning per key. */
  readonly raw: Partial<Record<K, RawValue>>;

  /**
   * @param envNames the environment variable for each setting (which also defines the known keys)
   * @param flags values from the command line; undefined and empty lists count as not given
   */
  constructor(
    private readonly envNames: Record<K, string>,
    flags: Partial<Record<K, RawValue | undefined>>,
    configFile: string | undefined,
    env: NodeJS.ProcessEnv,
  ) {
    const file: Partial<Record<K, RawValue>> = {};
    if (configFile) {
      let parsed: unknown;
      try {
        parsed = parseYaml(readFileSync(configFile, 'utf8')) as unknown;
      } catch (err) {
        this.problems.push(`${configFile}: ${(err as Error).message}`);
      }
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        for (const [k, v] of Object.entries(parsed)) {
          if (!(k in envNames)) this.problems.push(`${configFile}: unknown setting "${k}"`);
          else if (typeof v === 'string' || Array.isArray(v)) file[k as K] = Array.isArray(v) ? v.map(String) : v;
          else if (typeof v === 'number' || typeof v === 'boolean') file[k as K] = String(v);
          else this.problems.push(`${configFile}: setting "${k}" must be a string or a list`);
        }
      } else if (parsed !== undefined && parsed !== null) {
        this.problems.push(`${configFile}: expected a mapping of settings`);
      }
    }
    const fromEnv: Partial<Record<K, RawValue>> = {};
    for (const [k, name] of Object.entries(envNames) as Array<[K, string]>) {
      if (env[name] !== undefined) fromEnv[k] = env[name];
    }
    const given = Object.entries(flags).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0));
    this.raw = { ...file, ...fromEnv, ...(Object.fromEntries(given) as Partial<Record<K, RawValue>>) };
  }

  /** The last value given for `k`, or undefined. */
  opt(k: K): string | undefined {
    const v = this.raw[k];
    return v === undefined ? undefined : Array.isArray(v) ? v[v.length - 1] : v;
  }

  /** The last value given for `k`, or `def`. */
  str(k: K, def: string): string {
    return this.opt(k) ?? def;
  }

  /** A list setting: repeated flags, a YAML list, or comma-separated text. */
  list(k: K): string[] | undefined {
    const v = this.raw[k];
    if (v === undefined) return undefined;
    return (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean);
  }

  /** A duration in milliseconds (0 when invalid, with the problem recorded). */
  duration(k: K, def: string): number {
    return this.parse(k, def, (text) => parseDuration(text, k)) ?? 0;
  }

  /** Runs `parser` on the value of `k` (or `def`), recording a FerryError it throws as a problem. */
  parse<T>(k: K, def: string | undefined, parser: (text: string) => T): T | undefined {
    const text = this.opt(k) ?? def;
    if (text === undefined) return undefined;
    try {
      return parser(text);
    } catch (err) {
      this.problems.push((err as Error).message);
      return undefined;
    }
  }

  /** A pino log level. */
  logLevel(k: K, def = 'info'): string {
    const level = this.str(k, def);
    if (!(LOG_LEVELS as readonly string[]).includes(level)) this.problems.push(`${k} "${level}" is not one of ${LOG_LEVELS.join(', ')}`);
    return level;
  }

  /** Throws one CONFIG error listing every problem, if there are any. */
  check(what: string): void {
    if (this.problems.length === 0) return;
    const prefix = commonPrefix(Object.values(this.envNames) as string[]);
    throw new FerryError(ErrorCode.Config, `invalid ${what} configuration:\n  - ${this.problems.join('\n  - ')}`,
      `fix the settings above (flags override ${prefix}* environment variables, which override the --config file)`);
  }
}

function commonPrefix(names: string[]): string {
  let p = names[0] ?? '';
  for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
  return p;
}
