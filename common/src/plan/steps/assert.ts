/**
 * `assert`: run a read-only command and check its exit code and output.
 * This is how a plan states the seeds' verification lines
 * (`ctr -n k8s.io images ls | grep edgemesh`, `grep -A 8 edgeStream: ...`)
 * as checks that fail the step, instead of messages nobody reads.
 */
import { schema, type ArgReader } from '../step-schema.js';
import { readCommand, readDuration, type Command } from './exec.js';

/** Parsed args of `assert`. */
export interface AssertArgs {
  command: Command;
  /** Every string must appear in the output. */
  contains?: string[];
  /** No string may appear in the output. */
  notContains?: string[];
  /** A JavaScript regular expression the output must match; `^`/`$` match at line breaks. */
  matches?: string;
  /** The output, without trailing whitespace, must equal this (also trimmed at the end). */
  equals?: string;
  /** Expected exit code; default 0. */
  exitCode: number;
  /** Which output the checks look at; default stdout. */
  stream: 'stdout' | 'stderr' | 'both';
  timeoutMs?: number;
}

function readStrings(r: ArgReader, key: string): string[] | undefined {
  const v = r.any(key);
  if (v === undefined) return undefined;
  if (typeof v === 'string' || typeof v === 'number') return [String(v)];
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || typeof x === 'number')) return v.map(String);
  r.problem(key, `"${key}" must be a string or a non-empty list of strings`);
  return undefined;
}

/** Schema for `assert`. */
export const assertSchema = schema<AssertArgs>(
  'assert',
  'Run a check command (argv or shell) and fail unless its exit code and output match (contains, notContains, matches, equals)',
  (r) => {
    const command = readCommand(r, 'command', true);
    const matches = r.string('matches');
    if (matches !== undefined) {
      try { new RegExp(matches, 'm'); } catch (e) { r.problem('matches', `"matches" is not a valid regular expression: ${(e as Error).message}`); }
    }
    return {
      command: command!,
      contains: readStrings(r, 'contains'),
      notContains: readStrings(r, 'notContains'),
      matches,
      equals: r.string('equals'),
      exitCode: r.int('exitCode', { default: 0, min: 0, max: 255 }) ?? 0,
      stream: r.oneOf('stream', ['stdout', 'stderr', 'both'] as const, { default: 'stdout' }) ?? 'stdout',
      timeoutMs: readDuration(r, 'timeout', { min: 1 }),
    };
  },
);
