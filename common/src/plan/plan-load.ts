/**
 * The throwing entry point for callers that just need a valid plan (the
 * controller when a plan is pushed, the CLI's validate command).
 */
import { ErrorCode, FerryError } from '../errors.js';
import { parsePlan, type ParseOptions } from './parse.js';
import { formatProblems } from './plan-problems.js';
import type { Plan } from './types.js';

/**
 * Parses and validates a plan, or throws FerryError(InvalidArgument) whose
 * message lists every problem as `file:line:col: message`, one per line.
 */
export function planOrThrow(text: string, file: string, opts: ParseOptions = {}): Plan {
  const { plan, problems } = parsePlan(text, file, opts);
  if (plan && problems.length === 0) return plan;
  const n = problems.length;
  throw new FerryError(
    ErrorCode.InvalidArgument,
    `plan ${file} is invalid (${n} problem${n === 1 ? '' : 's'}):\n${formatProblems(problems)}`,
    'fix each line above (file:line:col) and validate the plan again',
  );
}
