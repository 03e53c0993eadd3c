/**
 * Shared machinery of the bundles and steps benchmark suites (bundles.ts,
 * steps.ts): child-process bookkeeping with cleanup on exit, failure and
 * Ctrl-C; the CLI; per-process readings; a suite's deadline and cleanup.
 * Ferry's controller and agents as child processes are in ferry-procs.ts,
 * the results table in report.ts, machine-wide counters in sys-counters.ts.
 *
 * Only processes started here are ever signalled, by their pid; only
 * 127.0.0.1 is used.
 */
import { withMallocEnv } from '../../common/src/malloc-env.js';

/**
 * The environment the suites start Ferry's processes (and the plain peers)
 * with: the glibc malloc settings deployments get (common/src/malloc-env.ts),
 * unless BENCH_MALLOC=off (to measure without them).
 */
export function benchEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return process.env['BENCH_MALLOC'] === 'off' ? env : withMallocEnv(env);
}
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { procCpuMs, procMem } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/scripts/bench
export const REPO = resolve(here, '../../..');
export const FERRY = join(REPO, 'bin/ferry.js');
export const FERRY_AGENT = join(REPO, 'bin/ferry-agent.js');

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function progress(suite: string, msg: string): void {
  process.stderr.write(`[bench ${suite} ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---- processes and temp dirs ---------------------------------------------------------

/** Whether the child has exited or was killed by a signal. */
export function exited(c: ChildProcess): boolean {
  return c.exitCode !== null || c.signalCode !== null;
}

export function waitExit(c: ChildProcess, ms: number): Promise<boolean> {
  if (exited(c)) return Promise.resolve(true);
  return new Promise((res) => {
    const t = setTimeout(() => res(false), ms);
    c.once('exit', () => { clearTimeout(t); res(true); });
  });
}

/** SIGTERM, then SIGKILL if it has not exited after `graceMs` (and 5 s more for the kill). */
export async function terminate(c: ChildProcess, graceMs: number): Promise<void> {
  c.kill('SIGTERM');
  if (!(await waitExit(c, graceMs))) {
    c.kill('SIGKILL');
    await waitExit(c, 5_000);
  }
}

/** Children (by ChildProcess), extra pids (nginx workers) and temp dirs of one suite run, all removed by `cleanup()`. */
export class Janitor {
  readonly children = new Set<ChildProcess>();
  private readonly finals: Array<() => Promise<void> | void> = [];
  private readonly dirs: string[] = [];
  private cleaning?: Promise<void>;

  constructor(readonly suite: string, readonly keep: boolean) {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        progress(suite, `${sig}: cleaning up`);
        void this.cleanup().then(() => process.exit(130));
      });
    }
  }

  tempDir(prefix: string): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  /** Runs at cleanup before children are stopped (stop containerd, nginx ...), last registered first. */
  onCleanup(fn: () => Promise<void> | void): void {
    this.finals.push(fn);
  }

  spawn(file: string, args: string[], opts: SpawnOptions): ChildProcess {
    const env = Object.fromEntries(Object.entries(opts.env ?? process.env).filter(([k]) => !k.startsWith('FERRY_')));
    const c = spawn(file, args, { ...opts, env });
    this.children.add(c);
    c.once('exit', () => this.children.delete(c));
    c.once('error', () => this.children.delete(c));
    return c;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(c: ChildProcess, graceMs = 10_000): Promise<void> {
    if (!exited(c) && c.pid !== undefined) await terminate(c, graceMs);
    this.children.delete(c);
  }

  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      for (const f of [...this.finals].reverse()) {
        try {
          await f();
        } catch (e) {
          progress(this.suite, `cleanup step failed: ${(e as Error).message}`);
        }
      }
      await Promise.all([...this.children].map((c) => this.stop(c, 5_000)));
      for (const d of this.dirs) {
        if (this.keep) progress(this.suite, `kept ${d}`);
        else rmSync(d, { recursive: true, force: true });
      }
    })();
    return this.cleaning;
  }
}

export interface RunResult { code: number | null; stdout: string; stderr: string; ms: number }

/** Runs a program to completion, collecting its output; it is stopped (and this throws) when it passes `timeoutMs`. */
export async function runBounded(j: Janitor, file: string, args: string[], timeoutMs: number, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const t0 = performance.now();
  const c = j.spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env });
  let stdout = '';
  let stderr = '';
  c.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  c.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-20_000); });
  const done = new Promise<number | null>((res) => {
    c.once('error', (e) => { stderr += e.message; res(-1); });
    c.once('close', (code) => res(code));
  });
  const t = setTimeout(() => { void j.stop(c, 2_000); }, timeoutMs);
  const code = await done;
  clearTimeout(t);
  const ms = performance.now() - t0;
  if (ms >= timeoutMs) throw new Error(`${file} ${args.slice(0, 3).join(' ')} … did not finish within ${Math.round(timeoutMs / 1000)} s: ${stderr.slice(-500)}`);
  return { code, stdout, stderr, ms };
}

/** The ferry CLI against a data dir; throws on a non-zero exit. */
export async function ferry(j: Janitor, dataDir: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await runBounded(j, process.execPath, [FERRY, '--data', dataDir, ...args], timeoutMs);
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A port nothing listens on right now (for servers that cannot report their own). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

export function freeDiskBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

/** CPU ms a process has used so far, 0 once it is gone. */
export function cpuMsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return procCpuMs(pid);
  } catch {
    return 0;
  }
}

/** VmHWM / VmRSS in bytes, or NaN once the process is gone. */
export function memOf(pid: number | undefined): { hwm: number; rss: number } {
  try {
    const m = procMem(pid!);
    return { hwm: m.vmHwmKiB * 1024, rss: m.vmRssKiB * 1024 };
  } catch {
    return { hwm: Number.NaN, rss: Number.NaN };
  }
}

/** Children of a process (nginx workers), from /proc. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

// ---- GC pauses (gc-meter.ts) -----------------------------------------------------------

/** node arguments that preload gc-meter.js; the process also needs BENCH_GC_DIR in its environment. */
export function gcMeterArgs(): string[] {
  return ['--import', pathToFileURL(join(REPO, 'build/scripts/bench/gc-meter.js')).href];
}

/** GC pause totals a gc-meter'd process last wrote to `dir` (zeros if none yet). */
export function gcOf(dir: string, pid: number): { ms: number; count: number; major: number } {
  try {
    return JSON.parse(readFileSync(join(dir, `${pid}.json`), 'utf8')) as { ms: number; count: number; major: number };
  } catch {
    return { ms: 0, count: 0, major: 0 };
  }
}

/** Options every suite takes. */
export interface SuiteOptions {
  quick: boolean;
  out: string;
  keep: boolean;
  profile: boolean;
  timeoutMin?: number;
}

/** Runs `main` with a global deadline and cleanup on success, failure and signals; returns the exit code. */
export async function runSuite(j: Janitor, timeoutMin: number, main: () => Promise<number>): Promise<number> {
  const deadline = setTimeout(() => {
    progress(j.suite, `the whole run exceeded ${timeoutMin} min; giving up`);
    void j.cleanup().then(() => process.exit(3));
  }, timeoutMin * 60_000);
  deadline.unref();
  try {
    const code = await main();
    await j.cleanup();
    return code;
  } catch (err) {
    progress(j.suite, `failed: ${(err as Error)?.stack ?? String(err)}`);
    await j.cleanup();
    return 1;
  } finally {
    clearTimeout(deadline);
  }
}
