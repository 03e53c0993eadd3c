/**
 * Small process helpers shared by the simulated-hosts harness.
 *
 * Everything the harness does to the machine goes through real programs (`ip`, `nsenter`,
 * `mount`, `systemd-nspawn`), so these helpers run argv arrays — never shell strings built
 * from untrusted input — and return exit codes instead of throwing, because "this command
 * failed" is very often the thing a test wants to assert.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { execa } from 'execa';

/** Result of one finished command. `exitCode` is 128+signal when it was killed. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** True when the harness killed it because `timeoutMs` passed. */
  timedOut: boolean;
}

/** Options for {@link run}. */
export interface RunOptions {
  /** Bytes or text fed to standard input. */
  input?: string | Buffer;
  /** A local file streamed to standard input (for large files such as the agent binary). */
  inputFile?: string;
  /** Kill the command after this many milliseconds (default 60 s). */
  timeoutMs?: number;
  /** Environment; replaces the harness's own environment entirely when given. */
  env?: Record<string, string>;
  cwd?: string;
}

/** Signals by number, for turning "killed by SIGKILL" into the shell's 137. */
const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
};

/**
 * Runs `argv` to completion and never throws for a non-zero exit: the caller decides what a
 * failure means. Throws only when the program cannot be started at all.
 */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('run: empty argv');
  const r = await execa(file, args, {
    reject: false,
    stripFinalNewline: false,
    timeout: opts.timeoutMs ?? 60_000,
    // A replaced environment must not silently inherit the harness's PATH, proxies etc.
    extendEnv: opts.env === undefined,
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.inputFile !== undefined ? { inputFile: opts.inputFile } : {}),
    ...(opts.input === undefined && opts.inputFile === undefined ? { stdin: 'ignore' as const } : {}),
  });
  if (r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut) {
    // ENOENT and friends: the program does not exist, which is a harness bug, not a result.
    throw new Error(`cannot run ${file}: ${r.message}`);
  }
  const exitCode = r.exitCode ?? 128 + (r.signal ? (SIGNALS[r.signal] ?? 1) : 1);
  return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode, timedOut: r.timedOut };
}

/** Like {@link run} but throws (with stderr in the message) unless the exit code is 0. */
export async function runOk(argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.exitCode !== 0) {
    throw new Error(`${argv.join(' ')} exited ${r.exitCode}${r.timedOut ? ' (timeout)' : ''}: ${(r.stderr || r.stdout).trim()}`);
  }
  return r.stdout;
}

/**
 * Synchronous variant for the process-exit handler, where nothing asynchronous runs any more.
 * Returns the exit code (or -1 when it could not start) and never throws.
 */
export function runSync(argv: readonly string[], timeoutMs = 10_000): { exitCode: number; output: string } {
  const [file, ...args] = argv;
  const r = spawnSync(file!, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  return { exitCode: r.status ?? -1, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** Promise-based sleep. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Blocking sleep for synchronous cleanup (the exit handler cannot await). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Polls `probe` until it returns a value other than `undefined`/`false`, or throws after
 * `timeoutMs` with `what` and the last error seen in the message.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * True while `pid` exists and is not a zombie. A zombie counts as gone: it holds no
 * namespaces or mounts any more, it only waits for its parent to reap it.
 */
export function pidAlive(pid: number | undefined): boolean {
  if (!pid || pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself hold ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Sends a signal, ignoring "no such process". */
export function signal(pid: number | undefined, sig: NodeJS.Signals | number): void {
  if (!pid || pid <= 0) return;
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Direct children of `pid` (all threads), via /proc/PID/task/TID/children. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const txt = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (txt) out.push(...txt.split(/\s+/).map(Number));
    }
  } catch {
    /* process gone */
  }
  return out;
}

/** The `comm` (short program name) of a process, or undefined when it is gone. */
export function commOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The process's PID as seen inside its innermost PID namespace (last `NSpid` field). */
export function innermostPid(pid: number): number | undefined {
  try {
    const m = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    const last = m?.[1]?.trim().split(/\s+/).pop();
    return last === undefined ? undefined : Number(last);
  } catch {
    return undefined;
  }
}

/** Start time of a process in clock ticks since boot: tells a reused PID from the original. */
export function startTimeOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]); // field 22 of stat; fields[0] here is field 3
  } catch {
    return undefined;
  }
}

/** A namespace link of a process, e.g. "pid:[4026532392]", or undefined when it is gone. */
export function nsLink(pid: number, kind: 'pid' | 'pid_for_children' | 'net' | 'mnt'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/**
 * Resumes stopped processes that live outside PID namespace `pidNs` but fork into it — the
 * waiting half of a forking `nsenter` (e.g. an interactive `hosts-cli exec`). See Host.exec
 * for why they stop; resumed, they reap their child and exit, and the namespace can die.
 */
export function releaseStoppedNsenters(pidNs: string): void {
  for (const pid of allPids()) {
    if (nsLink(pid, 'pid_for_children') !== pidNs || nsLink(pid, 'pid') === pidNs) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T') signal(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  }
}

/** All PIDs currently in /proc. */
export function allPids(): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
}

/** Quotes one word for /bin/sh (used only for generated launcher scripts). */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
