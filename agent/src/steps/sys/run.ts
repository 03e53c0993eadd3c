/**
 * Runs one host program for a step executor: its own process group (so cancel and step
 * timeouts reach everything it started), output collected and optionally streamed line by
 * line to the controller, and "not installed" turned into a clear step error.
 */
import { execa } from 'execa';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { StepContext } from '../step.js';
import { StepCode, StepError, throwIfAborted, type StepErrorCode } from '../step-error.js';

/** What {@link runCommand} needs from the step context. */
export type RunContext = Pick<StepContext, 'signal' | 'output'>;

export interface RunOptions {
  /** Bytes for stdin (otherwise stdin is /dev/null, so nothing ever waits on a terminal). */
  input?: string;
  /** Forward each output line to ctx.output (default true). */
  stream?: boolean;
  /** Kill the process group after this long; the result then has timedOut. */
  timeoutMs?: number;
  /** Extra environment on top of the agent's. */
  env?: Record<string, string>;
  /** What the program is, for "not installed" messages (default: argv[0]). */
  tool?: string;
  /** What to do when the program is missing, for the hint. */
  installHint?: string;
}

export interface RunResult {
  argv: string[];
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** After SIGTERM, how long a process group gets before SIGKILL. */
const KILL_GRACE_MS = 3_000;
/** Output kept per stream; evidence for messages, not a log store (lines still stream in full). */
const MAX_KEPT_BYTES = 1 << 20;

/** Runs argv without a shell; never rejects on a non-zero exit. Throws StepError when missing or cancelled. */
export async function runCommand(ctx: RunContext, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  throwIfAborted(ctx.signal);
  const [file, ...args] = argv;
  const child = execa(file!, args, {
    reject: false, buffer: false, detached: true, cleanup: true, stripFinalNewline: false,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
    env: { LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', ...opts.env },
  });
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const kill = () => {
    if (child.pid === undefined) return;
    signalGroup(child.pid, 'SIGTERM');
    killTimer ??= setTimeout(() => signalGroup(child.pid!, 'SIGKILL'), KILL_GRACE_MS);
  };
  const onAbort = () => kill();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timer = opts.timeoutMs ? setTimeout(() => { timedOut = true; kill(); }, opts.timeoutMs) : undefined;
  const stream = opts.stream ?? true;
  const out = collect(child.stdout, stream ? (l) => ctx.output(l, 'stdout') : undefined);
  const err = collect(child.stderr, stream ? (l) => ctx.output(l, 'stderr') : undefined);
  try {
    const [r, stdout, stderr] = await Promise.all([child, out, err]);
    if (r.exitCode === undefined && !r.signal) {
      const code = (r as { code?: string }).code;
      const tool = opts.tool ?? file!;
      if (code === 'ENOENT') {
        throw new StepError(StepCode.ToolMissing, `${tool} is not installed on this host ("${file}" not found on PATH=${process.env.PATH ?? ''})`,
          opts.installHint ?? `install ${tool} on the host (or put it on the agent's PATH) and run the step again`);
      }
      throw new StepError(StepCode.CommandFailed, `cannot start ${file}: ${r.originalMessage ?? r.message}`, 'check that the program is executable by the agent');
    }
    throwIfAborted(ctx.signal);
    return { argv: [...argv], exitCode: r.exitCode ?? 128 + 9, stdout, stderr, timedOut };
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    clearTimeout(timer);
    clearTimeout(killTimer);
  }
}

/** {@link runCommand} that throws a StepError with stderr unless the exit code is 0. */
export async function runOk(ctx: RunContext, argv: readonly string[], what: string, hint: string, opts: RunOptions = {}): Promise<RunResult> {
  const r = await runCommand(ctx, argv, opts);
  if (r.exitCode !== 0) throw commandError(r, what, hint);
  return r;
}

/** A StepError for a failed command: the summary, the exact argv, and the tool's own words. */
export function commandError(r: RunResult, what: string, hint: string, code: StepErrorCode = StepCode.CommandFailed): StepError {
  const said = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-20).join('\n');
  const how = r.timedOut ? 'timed out' : `exit ${r.exitCode}`;
  return new StepError(code, `${what}: \`${shellQuote(r.argv)}\` failed (${how}): ${keyLine(said)}`, hint,
    said.includes('\n') ? said : undefined);
}

/** Quotes argv for display so people can paste it into a shell. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Usage hints and info-level log lines that never say what went wrong. */
const NOISE = /^(Try `|See "systemctl status|time="[^"]*" level=(info|debug|warning))/;

/** The line that says what went wrong: tools print the fatal error last, after log noise. */
function keyLine(s: string): string {
  const lines = s.split('\n').filter((l) => l.trim());
  return lines.filter((l) => !NOISE.test(l)).pop() ?? lines[0] ?? '(no output)';
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // the group is gone already
  }
}

function collect(stream: Readable | null | undefined, onLine?: (l: string) => void): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve) => {
    let kept = '';
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on('line', (l) => {
      onLine?.(l);
      if (kept.length < MAX_KEPT_BYTES) kept += `${l}\n`;
    });
    rl.on('close', () => resolve(kept));
  });
}
