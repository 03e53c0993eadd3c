/**
 * How step executors run programs, on top of the agent's one process runner
 * (common/src/proc/run-process.ts): host tools (systemctl, ctr, iptables,
 * kubectl) with a plain locale and "not installed" turned into a clear step
 * error, and the commands plans give (exec, assert, wait.for and guards),
 * plus how commands are shown in messages. Every run is reported to the
 * step's tracker so the job journal knows its process group.
 */
import { ErrorCode } from '../../../../common/src/errors.js';
import type { Command } from '../../../../common/src/plan/steps/exec.js';
import { runProcess, type ProcessResult } from '../../../../common/src/proc/run-process.js';
import type { StepContext } from '../step.js';
import { StepError, throwIfAborted, type StepErrorCode } from '../step-error.js';

/** What {@link runCommand} needs from the step context. */
export type RunContext = Pick<StepContext, 'signal' | 'output' | 'track'>;

export interface RunOptions {
  /** Bytes for stdin (otherwise stdin is /dev/null, so nothing ever waits on a terminal). */
  input?: string;
  /** Forward each output line to ctx.output (default true). */
  stream?: boolean;
  /** Kill the process group after this long; the result then has timedOut. */
  timeoutMs?: number;
  /** Extra environment on top of the agent's. */
  env?: Record<string, string>;
  /** Bytes of each stream kept for the result (default 1 MiB). */
  captureBytes?: number;
  /** What the program is, for "not installed" messages (default: argv[0]). */
  tool?: string;
  /** What to do when the program is missing, for the hint. */
  installHint?: string;
}

export interface RunResult {
  argv: string[];
  /** 128 + signal number style: a killed program never reads as success. */
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** stdout/stderr were cut at the capture limit. */
  truncated: boolean;
}

/**
 * Runs a host tool (argv, no shell) with LC_ALL=C; never rejects on a non-zero exit.
 * Throws StepError when the program is missing or the step was cancelled.
 */
export async function runCommand(ctx: RunContext, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  throwIfAborted(ctx.signal);
  const stream = opts.stream ?? true;
  const r = await runProcess({
    argv, input: opts.input, env: opts.env, timeoutMs: opts.timeoutMs, captureBytes: opts.captureBytes, plainLocale: true,
    signal: ctx.signal, track: ctx.track, onLine: stream ? (l, s) => ctx.output(l, s) : undefined,
  });
  if (r.startError) {
    const file = argv[0]!;
    const tool = opts.tool ?? file;
    if (r.startErrorCode === 'ENOENT') {
      throw new StepError(ErrorCode.StepToolMissing, `${tool} is not installed on this host ("${file}" not found on PATH=${process.env.PATH ?? ''})`,
        opts.installHint ?? `install ${tool} on the host (or put it on the agent's PATH) and run the step again`);
    }
    throw new StepError(ErrorCode.StepCommandFailed, `cannot start ${file}: ${r.startError}`, 'check that the program is executable by the agent');
  }
  throwIfAborted(ctx.signal);
  return { argv: [...argv], exitCode: r.exitCode ?? 128 + 9, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut, truncated: r.truncated };
}

/** {@link runCommand} that throws a StepError with stderr unless the exit code is 0. */
export async function runOk(ctx: RunContext, argv: readonly string[], what: string, hint: string, opts: RunOptions = {}): Promise<RunResult> {
  const r = await runCommand(ctx, argv, opts);
  if (r.exitCode !== 0) throw commandError(r, what, hint);
  return r;
}

/** How a plan's command runs: its own environment and directory, bounded. */
export interface PlanCommandOptions {
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** Put before each streamed line (guards say which guard printed it). */
  prefix?: string;
  /** Stream no lines (probes repeated every second would flood the job's output). */
  quiet?: boolean;
}

/**
 * Runs a command a plan gives (exec, assert, wait.for, guards) in the agent's
 * locale, streaming its lines. Never throws: whether it started, timed out
 * or was cancelled is in the result, for the caller to word.
 */
export function runPlanCommand(ctx: RunContext, cmd: Command, o: PlanCommandOptions = {}): Promise<ProcessResult> {
  const prefix = o.prefix ?? '';
  return runProcess({
    argv: argvOf(cmd), env: o.env, cwd: o.cwd, timeoutMs: o.timeoutMs, signal: ctx.signal, track: ctx.track,
    onLine: o.quiet ? undefined : (line, stream) => ctx.output(prefix + line, stream),
  });
}

/** A StepError for a failed command: the summary, the exact argv, and the tool's own words. */
export function commandError(r: RunResult, what: string, hint: string, code: StepErrorCode = ErrorCode.StepCommandFailed): StepError {
  const said = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-20).join('\n');
  const how = r.timedOut ? 'timed out' : `exit ${r.exitCode}`;
  return new StepError(code, `${what}: \`${shellQuote(r.argv)}\` failed (${how}): ${keyLine(said)}`, hint,
    said.includes('\n') ? said : undefined);
}

/** The argv a plan command runs as. */
export function argvOf(cmd: Command): string[] {
  return 'argv' in cmd ? cmd.argv : ['/bin/sh', '-c', cmd.shell];
}

/** Quotes argv for display so people can paste it into a shell. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** A plan command for messages, in backticks: the shell string, or argv quoted where needed. */
export function commandText(cmd: Command): string {
  return `\`${'shell' in cmd ? cmd.shell : shellQuote(cmd.argv)}\``;
}

/** The last `n` lines of some output, for failure messages. */
export function tail(text: string, n = 20): string {
  const lines = text.replace(/\n$/, '').split('\n');
  return lines.length > n ? [`… (${lines.length - n} earlier lines)`, ...lines.slice(-n)].join('\n') : lines.join('\n');
}

/** Usage hints and info-level log lines that never say what went wrong. */
const NOISE = /^(Try `|See "systemctl status|time="[^"]*" level=(info|debug|warning))/;

/** The line that says what went wrong: tools print the fatal error last, after log noise. */
function keyLine(s: string): string {
  const lines = s.split('\n').filter((l) => l.trim());
  return lines.filter((l) => !NOISE.test(l)).pop() ?? lines[0] ?? '(no output)';
}
