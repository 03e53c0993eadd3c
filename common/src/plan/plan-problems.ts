/**
 * Turning plan problems into text people and editors read: one
 * `file:line:col: message` line each (the format compilers use, so
 * terminals and editors make them clickable).
 */
import type { PlanProblem } from './types.js';

/** Problems in reading order: by file, line, column, then message (stable output for tests and diffs). */
export function sortProblems(problems: readonly PlanProblem[]): PlanProblem[] {
  return [...problems].sort((a, b) =>
    a.file < b.file ? -1 : a.file > b.file ? 1
      : a.line - b.line || a.col - b.col || (a.message < b.message ? -1 : a.message > b.message ? 1 : 0));
}

/** `file:line:col: message`, one line per problem, sorted; "" for none. */
export function formatProblems(problems: readonly PlanProblem[]): string {
  return sortProblems(problems).map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`).join('\n');
}
