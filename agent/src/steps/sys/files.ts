/**
 * Small file helpers for executors that manage config files (unit files, drop-ins, saved
 * iptables rules): read-if-present, atomic replace with a fixed mode, and a unified diff for
 * the outcome — so check mode can show exactly what a run would write.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, rmdirSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** File content as text, or undefined when there is no file. */
export function readTextIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Replaces `path` atomically (temp file in the same directory, fsync, rename), so systemd or a
 * reboot never sees half a file. Parent directories are created 0755: these are system
 * config directories other programs must read.
 */
export function writeTextAtomic(path: string, text: string, mode = 0o644): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = join(dir, `.${basename(path)}.ferry-${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode); // the umask must not decide a unit file's mode
  renameSync(tmp, path);
}

/** Puts a file back as it was: the old text, or no file (and no empty directory we made). */
export function restoreText(path: string, old: string | undefined, mode = 0o644): void {
  if (old !== undefined) {
    writeTextAtomic(path, old, mode);
    return;
  }
  rmSync(path, { force: true });
  try {
    rmdirSync(dirname(path)); // only succeeds when empty (e.g. a drop-in directory we created)
  } catch {
    // not empty or not ours: leave it
  }
}

/** Longest inputs we diff line by line (LCS is quadratic); beyond that a summary line. */
const MAX_DIFF_LINES = 2000;
const CONTEXT = 3;

/**
 * A unified diff of two texts (`--- a` / `+++ b` / `@@` hunks with 3 lines of context).
 * `old` undefined means the file is new. Returns "" when equal.
 */
export function unifiedDiff(label: string, old: string | undefined, next: string | undefined): string {
  if (old === next) return '';
  const a = old === undefined ? [] : splitLines(old);
  const b = next === undefined ? [] : splitLines(next);
  const head = `--- ${old === undefined ? '/dev/null' : `a${label}`}\n+++ ${next === undefined ? '/dev/null' : `b${label}`}\n`;
  if (a.length > MAX_DIFF_LINES || b.length > MAX_DIFF_LINES) return `${head}@@ ${a.length} lines -> ${b.length} lines (too long to diff) @@\n`;
  const ops = diffLines(a, b);
  let out = head;
  // Group changes into hunks with CONTEXT lines around them.
  let i = 0;
  while (i < ops.length) {
    if (ops[i]!.op === ' ') { i++; continue; }
    const start = Math.max(0, i - CONTEXT);
    let end = i;
    for (;;) {
      while (end < ops.length && ops[end]!.op !== ' ') end++;
      let next = end;
      while (next < ops.length && ops[next]!.op === ' ') next++;
      if (next < ops.length && next - end <= 2 * CONTEXT) { end = next; continue; }
      end = Math.min(ops.length, end + CONTEXT);
      break;
    }
    const hunk = ops.slice(start, end);
    const aStart = hunk[0]!.ai + 1;
    const bStart = hunk[0]!.bi + 1;
    const aLen = hunk.filter((o) => o.op !== '+').length;
    const bLen = hunk.filter((o) => o.op !== '-').length;
    out += `@@ -${aLen ? aStart : aStart - 1},${aLen} +${bLen ? bStart : bStart - 1},${bLen} @@\n`;
    for (const o of hunk) out += `${o.op}${o.line}\n`;
    i = end;
  }
  return out;
}

interface Op { op: ' ' | '-' | '+'; line: string; ai: number; bi: number }

function splitLines(s: string): string[] {
  const lines = s.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Classic LCS table walk; fine for config files of a few hundred lines. */
function diffLines(a: string[], b: string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const ops: Op[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { ops.push({ op: ' ', line: a[i]!, ai: i, bi: j }); i++; j++; }
    else if (i < n && (j >= m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) { ops.push({ op: '-', line: a[i]!, ai: i, bi: j }); i++; }
    else { ops.push({ op: '+', line: b[j]!, ai: i, bi: j }); j++; }
  }
  return ops;
}
