/**
 * Line diffs for step outcomes (unified diff) and a three-way line merge that
 * lets yaml.edit keep a file's own layout: edits are computed on a re-rendered
 * document and replayed onto the original text.
 */

/** One step of an edit script between line lists a and b. */
export type DiffOp = { op: '='; a: number; b: number } | { op: '-'; a: number } | { op: '+'; b: number };

/** Above this much work the middle of a diff is treated as replaced wholesale (still correct, just coarse). */
const MAX_WORK = 20_000_000;

/** Myers' O((N+M)·D) diff of two line lists, after trimming the common prefix and suffix. */
export function diffLines(a: readonly string[], b: readonly string[]): DiffOp[] {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const ops: DiffOp[] = [];
  for (let i = 0; i < pre; i++) ops.push({ op: '=', a: i, b: i });
  ops.push(...myers(a.slice(pre, a.length - suf), b.slice(pre, b.length - suf), pre));
  for (let i = suf; i > 0; i--) ops.push({ op: '=', a: a.length - i, b: b.length - i });
  return ops;
}

function myers(a: readonly string[], b: readonly string[], base: number): DiffOp[] {
  const n = a.length, m = b.length, max = n + m, off = max + 1;
  const replaceAll = (): DiffOp[] => [
    ...a.map((_, i): DiffOp => ({ op: '-', a: base + i })), ...b.map((_, j): DiffOp => ({ op: '+', b: base + j }))];
  if (n === 0 || m === 0) return replaceAll();
  const v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    if (d * v.length > MAX_WORK) return replaceAll();
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(trace, n, m, off, base);
    }
  }
  return replaceAll();
}

function backtrack(trace: Int32Array[], n: number, m: number, off: number, base: number): DiffOp[] {
  const ops: DiffOp[] = [];
  let x = n, y = m;
  for (let d = trace.length - 1; d > 0; d--) {
    const v = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? k + 1 : k - 1;
    const px = v[off + prevK]!, py = px - prevK;
    while (x > px && y > py) { x--; y--; ops.push({ op: '=', a: base + x, b: base + y }); }
    if (prevK === k + 1) { y--; ops.push({ op: '+', b: base + y }); } else { x--; ops.push({ op: '-', a: base + x }); }
  }
  while (x > 0 && y > 0) { x--; y--; ops.push({ op: '=', a: base + x, b: base + y }); }
  return ops.reverse();
}

/** Splits text into lines that keep their "\n" (the last may lack one). */
export function splitKeep(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/**
 * A unified diff (3 lines of context) between two texts, with `--- a` and
 * `+++ b` headers; empty when they are equal.
 */
export function unifiedDiff(before: string, after: string, labelA: string, labelB: string, context = 3): string {
  if (before === after) return '';
  const a = splitKeep(before), b = splitKeep(after);
  const ops = diffLines(a, b);
  const out = [`--- ${labelA}`, `+++ ${labelB}`];
  const show = (prefix: string, line: string) => {
    out.push(prefix + line.replace(/\n$/, ''));
    if (!line.endsWith('\n')) out.push('\\ No newline at end of file');
  };
  let i = 0;
  while (i < ops.length) {
    while (i < ops.length && ops[i]!.op === '=') i++;
    if (i >= ops.length) break;
    // Grow the hunk while the next change is within 2×context lines.
    const start = Math.max(0, i - context);
    let end = i;
    for (;;) {
      while (end < ops.length && ops[end]!.op !== '=') end++;
      let eq = end;
      while (eq < ops.length && ops[eq]!.op === '=') eq++;
      if (eq < ops.length && eq - end <= 2 * context) end = eq; else { end = Math.min(ops.length, end + context); break; }
    }
    const hunk = ops.slice(start, end);
    const aLines = hunk.filter((o) => o.op !== '+').length, bLines = hunk.filter((o) => o.op !== '-').length;
    const first = hunk[0]!;
    const aStart = 'a' in first ? first.a : countBefore(ops, start, 'a');
    const bStart = 'b' in first ? first.b : countBefore(ops, start, 'b');
    out.push(`@@ -${aLines ? aStart + 1 : aStart},${aLines} +${bLines ? bStart + 1 : bStart},${bLines} @@`);
    for (const o of hunk) {
      if (o.op === '=') show(' ', a[o.a]!); else if (o.op === '-') show('-', a[o.a]!); else show('+', b[o.b]!);
    }
    i = end;
  }
  return out.join('\n') + '\n';
}

/**
 * A unified diff of a file's text before and after, `a/`- and `b/`-prefixed
 * like git; undefined text means no file (shown as /dev/null).
 */
export function fileDiff(path: string, before: string | undefined, after: string | undefined): string {
  if (before === after) return '';
  return unifiedDiff(before ?? '', after ?? '', before === undefined ? '/dev/null' : `a${path}`, after === undefined ? '/dev/null' : `b${path}`);
}

function countBefore(ops: DiffOp[], idx: number, side: 'a' | 'b'): number {
  let n = 0;
  for (let i = 0; i < idx; i++) if (side in ops[i]!) n++;
  return n;
}

/**
 * Three-way merge by lines. `ours` and `theirs` both derive from `base`;
 * regions only one side changed take that side. Where both changed (a line
 * the edit touched that also differs in layout), lines are merged token by
 * token keeping `ours`' spacing when possible, else `theirs` wins. Callers
 * must verify the result (yaml.edit re-parses it).
 */
export function merge3(base: string, ours: string, theirs: string): string {
  const B = splitKeep(base), O = splitKeep(ours), T = splitKeep(theirs);
  const mo = matches(B, O), mt = matches(B, T);
  const out: string[] = [];
  let bi = 0, oi = 0, ti = 0;
  for (;;) {
    let i = bi;
    while (i < B.length && (mo[i]! < 0 || mt[i]! < 0)) i++;
    const oEnd = i < B.length ? mo[i]! : O.length, tEnd = i < B.length ? mt[i]! : T.length;
    out.push(...resolve(B.slice(bi, i), O.slice(oi, oEnd), T.slice(ti, tEnd)));
    if (i >= B.length) break;
    out.push(O[oEnd]!);
    bi = i + 1; oi = oEnd + 1; ti = tEnd + 1;
  }
  return out.join('');
}

function matches(a: string[], b: string[]): Int32Array {
  const m = new Int32Array(a.length).fill(-1);
  for (const o of diffLines(a, b)) if (o.op === '=') m[o.a] = o.b;
  return m;
}

const same = (x: string[], y: string[]) => x.length === y.length && x.every((l, i) => l === y[i]);

function resolve(base: string[], ours: string[], theirs: string[]): string[] {
  if (same(ours, base)) return theirs;
  if (same(theirs, base) || same(ours, theirs)) return ours;
  // Both changed. If ours only re-spaced the same lines, replay theirs' edit on ours line by line.
  if (ours.length !== base.length) return theirs;
  const out: string[] = [];
  const ops = diffLines(base, theirs);
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i]!;
    if (o.op === '=') { out.push(ours[o.a]!); continue; }
    if (o.op === '+') { out.push(theirs[o.b]!); continue; }
    // A run of deletions followed by insertions pairs up as replaced lines.
    let dEnd = i;
    while (dEnd < ops.length && ops[dEnd]!.op === '-') dEnd++;
    let iEnd = dEnd;
    while (iEnd < ops.length && ops[iEnd]!.op === '+') iEnd++;
    for (let k = 0; k < Math.max(dEnd - i, iEnd - dEnd); k++) {
      const del = ops[i + k], ins = ops[dEnd + k];
      if (k < dEnd - i && k < iEnd - dEnd && del!.op === '-' && ins!.op === '+') {
        out.push(mergeLine(base[del!.a]!, ours[del!.a]!, theirs[ins!.b]!));
      } else if (k < iEnd - dEnd && ins!.op === '+') out.push(theirs[ins!.b]!);
    }
    i = iEnd - 1;
  }
  return out;
}

/** Theirs' words with ours' spacing, when ours differs from base only in spacing; else theirs. */
function mergeLine(base: string, ours: string, theirs: string): string {
  const b = base.split(/(\s+)/), o = ours.split(/(\s+)/), t = theirs.split(/(\s+)/);
  if (b.length !== o.length || b.length !== t.length) return theirs;
  for (let i = 0; i < b.length; i += 2) if (b[i] !== o[i]) return theirs;
  return t.map((tok, i) => (i % 2 === 1 && tok === b[i] ? o[i]! : tok)).join('');
}
