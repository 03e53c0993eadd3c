/**
 * The one way Ferry runs a program (agent steps and jobs, and both CLIs' systemctl calls): in a process group of its own (so a
 * timeout or a cancel reaches everything it started), stdin from /dev/null
 * unless input is given, lines streamed as they arrive (overlong lines cut),
 * output kept up to a cap, and on timeout or cancel the whole group ended
 * (SIGTERM, grace, SIGKILL) before the result is returned. A tracker hears
 * about the group as soon as it exists and again once it is over, so the job
 * journal can find a group that outlived a killed agent.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { endGroup, groupRecord, signalGroup, type GroupRecord } from './process-group.js';

/** Longest line passed to onLine; longer lines are cut with a marker (a message stays small). */
export const MAX_LINE_BYTES = 16 * 1024;
/** Output kept per stream by default (lines still stream in full). */
const CAPTURE_BYTES = 1 << 20;
/** After the program exits, how long background children may hold its output open before we stop reading. */
const STREAM_GRACE_MS = 1_000;

/** Told when a program's process group starts and when it is over. */
export interface GroupTracker {
  started(g: GroupRecord): void;
  ended(g: GroupRecord): void;
}

/** What to run and how. */
export interface ProcessSpec {
  argv: readonly string[];
  /** Added to the agent's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Bytes for stdin; otherwise stdin is /dev/null, so nothing ever waits on a terminal. */
  input?: string;
  /** LC_ALL=C: messages and numbers in the form callers parse (systemctl, iptables, ctr). */
  plainLocale?: boolean;
  /** Cancels the program (whole group). */
  signal?: AbortSignal;
  timeoutMs?: number;
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Bytes of each stream kept in the result (default 1 MiB); beyond it `truncated` is set. */
  captureBytes?: number;
  track?: GroupTracker;
}

/** What a program did. Never an exception: failures to start are in startError. */
export interface ProcessResult {
  /** Undefined when it did not start or was killed by a signal. */
  exitCode?: number;
  signal?: string;
  stdout: string;
  stderr: string;
  /** Output beyond the capture cap was left out of stdout/stderr (not out of onLine). */
  truncated: boolean;
  timedOut: boolean;
  cancelled: boolean;
  /** Why it could not start ("command not found: x"), with the errno code. */
  startError?: string;
  startErrorCode?: string;
  durationMs: number;
}

/** Groups running now: ended with SIGKILL if the agent exits without ending them. */
const live = new Set<number>();
let exitHook = false;

/** Runs `spec.argv`; resolves when it has exited and, after a timeout or cancel, its whole group is gone. */
export async function runProcess(spec: ProcessSpec): Promise<ProcessResult> {
  const started = Date.now();
  const result: ProcessResult = { stdout: '', stderr: '', truncated: false, timedOut: false, cancelled: false, durationMs: 0 };
  if (spec.signal?.aborted) return { ...result, cancelled: true };
  const [file, ...args] = spec.argv;
  const env = { ...process.env, ...(spec.plainLocale ? { LC_ALL: 'C', LANG: 'C' } : {}), ...spec.env };
  const child = spawn(file!, args, {
    detached: true, cwd: spec.cwd, env,
    stdio: [spec.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null; err?: NodeJS.ErrnoException }>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => resolve({ code: null, sig: null, err }));
    child.once('exit', (code, sig) => resolve({ code, sig }));
  });
  const pid = child.pid;
  if (pid === undefined) {
    const { err } = await exited;
    return { ...result, startError: startError(file!, err), startErrorCode: err?.code, durationMs: Date.now() - started };
  }
  // Recorded before any output is awaited: a kill -9 of the agent from here on leaves a findable group.
  const group = groupRecord(pid) ?? { pgid: pid, start: 0, boot: '' };
  live.add(pid);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => { for (const g of live) signalGroup(g, 'SIGKILL'); });
  }
  try {
    spec.track?.started(group);
  } catch (err) {
    // Not journaled means not findable after a crash: do not let it run.
    signalGroup(pid, 'SIGKILL');
    live.delete(pid);
    throw err;
  }
  if (spec.input !== undefined) child.stdin!.on('error', () => undefined).end(spec.input);

  let ending: Promise<unknown> | undefined;
  const end = () => { ending ??= endGroup(group).catch(() => signalGroup(pid, 'SIGKILL')); };
  const onAbort = () => { result.cancelled = true; end(); };
  spec.signal?.addEventListener('abort', onAbort, { once: true });
  const timer = spec.timeoutMs ? setTimeout(() => { result.timedOut = true; end(); }, spec.timeoutMs) : undefined;
  const cap = spec.captureBytes ?? CAPTURE_BYTES;
  const keep = (name: 'stdout' | 'stderr') => (chunk: string) => {
    const room = cap - result[name].length;
    if (chunk.length <= room) result[name] += chunk;
    else { result[name] += chunk.slice(0, Math.max(0, room)); result.truncated = true; }
  };
  const closed = [
    readStream(child.stdout!, keep('stdout'), (l) => spec.onLine?.(l, 'stdout')),
    readStream(child.stderr!, keep('stderr'), (l) => spec.onLine?.(l, 'stderr')),
  ];
  try {
    const r = await exited;
    // A background child can hold the pipes open after the program exits; do not wait for it forever.
    const grace = setTimeout(() => { child.stdout!.destroy(); child.stderr!.destroy(); }, STREAM_GRACE_MS);
    await Promise.all(closed);
    clearTimeout(grace);
    // After a timeout or cancel nothing of the group may outlive the result.
    if (result.cancelled || result.timedOut) { end(); await ending; }
    result.exitCode = r.code ?? undefined;
    result.signal = r.sig ?? undefined;
  } finally {
    clearTimeout(timer);
    spec.signal?.removeEventListener('abort', onAbort);
    live.delete(pid);
    spec.track?.ended(group);
  }
  result.durationMs = Date.now() - started;
  return result;
}

function startError(file: string, err: NodeJS.ErrnoException | undefined): string {
  if (err?.code === 'ENOENT') return `command not found: ${file}`;
  if (err?.code === 'EACCES') return `permission denied: ${file}`;
  return `could not start ${file}: ${err?.message ?? 'unknown error'}`;
}

/** Reads a stream as UTF-8: every chunk to `keep`, every line (cut at MAX_LINE_BYTES) to `onLine`. */
function readStream(s: Readable, keep: (chunk: string) => void, onLine: (line: string) => void): Promise<void> {
  s.setEncoding('utf8');
  let partial = '';
  let cutting = false;
  const emit = (line: string) => {
    if (cutting) { cutting = false; return; } // the rest of a line already cut
    if (line.endsWith('\r')) line = line.slice(0, -1);
    onLine(cutLine(line));
  };
  s.on('data', (chunk: string) => {
    keep(chunk);
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const l of parts) emit(l);
    // A line with no end in sight: pass on its start now, drop the rest up to its newline.
    if (!cutting && Buffer.byteLength(partial) > MAX_LINE_BYTES) {
      onLine(cutLine(partial));
      partial = '';
      cutting = true;
    } else if (cutting && partial.length > MAX_LINE_BYTES) partial = '';
  });
  return new Promise((resolve) => {
    const done = () => {
      if (partial) emit(partial);
      partial = '';
      resolve();
    };
    s.once('end', done);
    s.once('close', done);
  });
}

function cutLine(line: string): string {
  if (Buffer.byteLength(line) <= MAX_LINE_BYTES) return line;
  return `${Buffer.from(line).subarray(0, MAX_LINE_BYTES).toString()}… [ferry: line cut at ${MAX_LINE_BYTES} bytes]`;
}
