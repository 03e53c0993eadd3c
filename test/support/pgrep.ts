import { execFileSync } from 'node:child_process';

/** Pids of the processes whose command line matches `pattern` (pgrep -f); none is an empty list. */
export function pgrepPids(pattern: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', pattern]).toString().trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** How many processes' command lines match `pattern` (pgrep -f). */
export function pgrep(pattern: string): number {
  return pgrepPids(pattern).length;
}
