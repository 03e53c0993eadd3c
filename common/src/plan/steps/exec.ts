/**
 * `exec`: run a command on the host, with guards that make it idempotent.
 * Also home of the readers for commands and durations that wait.for and
 * assert share.
 */
import { parseDuration } from '../../duration.js';
import { schema, type ArgReader } from '../step-schema.js';
import { readAbsPath } from './file-install.js';

/** A command: an argv list run without a shell, or a string run by `/bin/sh -c`. */
export type Command = { argv: string[] } | { shell: string };

/** Parsed args of `exec`. */
export interface ExecArgs {
  command: Command;
  /** Extra environment variables (added to the agent's environment). */
  env?: Record<string, string>;
  /** Absolute working directory on the host. */
  cwd?: string;
  /** Kill the command (its whole process group) after this long. */
  timeoutMs?: number;
  /** Exit codes that count as success; default [0]. */
  expectExit: number[];
  /** Absolute path: when it exists the command is not run (unchanged). */
  creates?: string;
  /** When this command exits 0 the command is not run (unchanged). */
  unless?: Command;
  /** The command runs only when this exits 0 (otherwise skipped). */
  onlyIf?: Command;
}

/**
 * Reads a command given as a list (argv) or a string (shell). Lists must not
 * be empty; the first element is the program.
 */
export function readCommand(r: ArgReader, key: string, required = false): Command | undefined {
  const v = r.any(key, { required });
  if (v === undefined) return undefined;
  if (typeof v === 'string') {
    if (!v.trim()) { r.problem(key, `"${key}" must not be empty`); return undefined; }
    return { shell: v };
  }
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || typeof x === 'number')) {
    return { argv: v.map(String) };
  }
  r.problem(key, `"${key}" must be a list of arguments like [ctr, -n, k8s.io, images, ls] or a shell command string`);
  return undefined;
}

/** Reads a duration such as "30s" or "2m" into milliseconds. */
export function readDuration(r: ArgReader, key: string, opts: { default?: number; min?: number } = {}): number | undefined {
  const s = r.string(key);
  if (s === undefined) return opts.default;
  try {
    const ms = parseDuration(s, `"${key}"`);
    if (opts.min !== undefined && ms < opts.min) { r.problem(key, `"${key}" must be at least ${opts.min}ms`); return undefined; }
    return ms;
  } catch {
    r.problem(key, `"${key}" must be a duration like 500ms, 30s, 5m or 1h30m (got "${s}")`);
    return undefined;
  }
}

/** Reads a list of exit codes (0–255). */
export function readExitCodes(r: ArgReader, key: string, fallback: number[]): number[] {
  const list = r.stringList(key);
  if (list === undefined) return fallback;
  const codes = list.map(Number);
  if (codes.length === 0 || codes.some((c) => !Number.isInteger(c) || c < 0 || c > 255)) {
    r.problem(key, `"${key}" must be a non-empty list of exit codes between 0 and 255`);
    return fallback;
  }
  return codes;
}

/** Schema for `exec`. */
export const execSchema = schema<ExecArgs>(
  'exec',
  'Run a command (argv or shell) with env/cwd/timeout; creates/unless/onlyIf guards keep it idempotent',
  (r) => {
    const argv = r.stringList('argv', { nonEmpty: true });
    const shell = r.string('shell');
    let command: Command | undefined;
    if (argv !== undefined && shell !== undefined) r.problem('argv', 'give either "argv" (a list) or "shell" (a string), not both');
    else if (argv !== undefined) command = { argv };
    else if (shell !== undefined) {
      if (shell.trim()) command = { shell };
      else r.problem('shell', '"shell" must not be empty');
    } else r.problem('', 'give "argv" (a list, run without a shell) or "shell" (a string for /bin/sh -c)');
    return {
      command: command!,
      env: r.stringMap('env'),
      cwd: readAbsPath(r, 'cwd', false),
      timeoutMs: readDuration(r, 'timeout', { min: 1 }),
      expectExit: readExitCodes(r, 'expectExit', [0]),
      creates: readAbsPath(r, 'creates', false),
      unless: readCommand(r, 'unless'),
      onlyIf: readCommand(r, 'onlyIf'),
    };
  },
);
