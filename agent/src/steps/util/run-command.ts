/**
 * Runs one command for a step: in its own process group (so a cancel or a
 * timeout reaches everything it started), lines streamed as they come,
 * output kept (bounded) for assertions and failure messages.
 */
import { execa } from 'execa';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Command } from '../../../../common/src/plan/steps/exec.js';

/** After SIGTERM, how long a process group gets before SIGKILL. */
const KILL_GRACE_MS = 3_000;
/** After the command exits, how long background children may keep its output open before we stop reading. */
const STREAM_GRACE_MS = 1_000;
/** Output kept per stream for the result (the rest is still streamed). */
const CAPTURE_BYTES = 1024 * 1024;

/** How to run a command: cancellation, timeout, environment, and where lines go. */
export interface RunOptions {
  signal: AbortSignal;
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  /** Each output line, as it arrives. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** What a command did. */
export interface RunResult {
  /** Undefined when the command did not start or was killed by a signal. */
  exitCode?: number;
  signal?: string;
  stdout: string;
  stderr: string;
  /** Output beyond the capture limit was dropped from stdout/stderr (not from the stream). */
  truncated: boolean;
  timedOut: boolean;
  cancelled: boolean;
  /** Why the command could not start (not found, not executable). */
  startError?: string;
  durationMs: number;
}

/** The argv a command runs as. */
export function argvOf(cmd: Command): string[] {
  return 'argv' in cmd ? cmd.argv : ['/bin/sh', '-c', cmd.shell];
}

/** A command for messages, in backticks: the shell string, or argv with shell-style quoting where needed. */
export function commandText(cmd: Command): string {
  if ('shell' in cmd) return `\`${cmd.shell}\``;
  return `\`${cmd.argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}\``;
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // the group is already gone
  }
}

/** Runs `cmd`; never throws for command failures (they are in the result). */
export async function runCommand(cmd: Command, opts: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const out = { stdout: '', stderr: '' };
  let truncated = false;
  const base = { stdout: '', stderr: '', truncated: false, timedOut: false, cancelled: false };
  if (opts.signal.aborted) return { ...base, cancelled: true, durationMs: 0 };
  const [file, ...args] = argvOf(cmd);
  const child = execa(file!, args, {
    reject: false, buffer: false, stdin: 'ignore', detached: true, cleanup: true,
    env: opts.env, cwd: opts.cwd, stripFinalNewline: false,
  });
  let timedOut = false, cancelled = false;
  let killTimer: NodeJS.Timeout | undefined;
  const kill = () => {
    if (child.pid === undefined) return;
    signalGroup(child.pid, 'SIGTERM');
    killTimer ??= setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), KILL_GRACE_MS);
  };
  const onAbort = () => { cancelled = true; kill(); };
  opts.signal.addEventListener('abort', onAbort, { once: true });
  const timer = opts.timeoutMs ? setTimeout(() => { timedOut = true; kill(); }, opts.timeoutMs) : undefined;
  // A background child can hold the pipes open after the command exits; do not wait for it forever.
  child.once('exit', () => setTimeout(() => { child.stdout?.destroy(); child.stderr?.destroy(); }, STREAM_GRACE_MS).unref());
  const keep = (name: 'stdout' | 'stderr') => (line: string) => {
    opts.onLine?.(line, name);
    if (out[name].length + line.length < CAPTURE_BYTES) out[name] += `${line}\n`; else truncated = true;
  };
  const closed = [readLines(child.stdout, keep('stdout')), readLines(child.stderr, keep('stderr'))];
  const r = await child;
  await Promise.all(closed);
  clearTimeout(timer);
  clearTimeout(killTimer);
  opts.signal.removeEventListener('abort', onAbort);
  // On cancel or timeout make sure nothing of the group survives the grace period.
  if ((cancelled || timedOut) && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
  const notStarted = child.pid === undefined || (r.exitCode === undefined && !r.signal && r.failed);
  return {
    exitCode: r.exitCode, signal: r.signal, ...out, truncated, timedOut, cancelled,
    startError: notStarted ? startError(file!, r) : undefined,
    durationMs: Date.now() - started,
  };
}

function startError(file: string, r: { code?: string; originalMessage?: string; message?: string }): string {
  if (r.code === 'ENOENT') return `command not found: ${file}`;
  if (r.code === 'EACCES') return `permission denied running ${file}`;
  return `could not start ${file}: ${r.originalMessage ?? r.message ?? 'unknown error'}`;
}

function readLines(stream: Readable | null | undefined, onLine: (l: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on('line', onLine);
    rl.on('close', resolve);
    stream.on('close', resolve);
  });
}

/** The last `n` lines of some output, for failure messages. */
export function tail(text: string, n = 20): string {
  const lines = text.replace(/\n$/, '').split('\n');
  return lines.length > n ? [`… (${lines.length - n} earlier lines)`, ...lines.slice(-n)].join('\n') : lines.join('\n');
}
