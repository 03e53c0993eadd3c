/**
 * Shared machinery of the bundles and steps benchmark suites (bundles.ts,
 * steps.ts): child-process bookkeeping with cleanup on exit, failure and
 * Ctrl-C; the real controller (`bin/ferry.js controller start`) and real
 * agents (`bin/ferry-agent.js join` / `run`) as child processes; the CLI;
 * and the results table (goal / measured / ratio / result) as markdown + JSON.
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
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { procCpuMs, procMem, sleep, withTimeout } from './lib.js';

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

function exited(c: ChildProcess): boolean {
  return c.exitCode !== null || c.signalCode !== null;
}

export function waitExit(c: ChildProcess, ms: number): Promise<boolean> {
  if (exited(c)) return Promise.resolve(true);
  return new Promise((res) => {
    const t = setTimeout(() => res(false), ms);
    c.once('exit', () => { clearTimeout(t); res(true); });
  });
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
    if (!exited(c) && c.pid !== undefined) {
      c.kill('SIGTERM');
      if (!(await waitExit(c, graceMs))) {
        c.kill('SIGKILL');
        await waitExit(c, 5_000);
      }
    }
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

// ---- the controller ------------------------------------------------------------------

export class ControllerProc {
  private constructor(private readonly j: Janitor, readonly proc: ChildProcess, readonly address: string, readonly dataDir: string) {}

  get pid(): number {
    return this.proc.pid!;
  }

  /** `node [nodeArgs] bin/ferry.js controller start --data DIR --listen LISTEN`; resolves once it prints where agents dial. */
  static async start(j: Janitor, dataDir: string, listen: string, logPath: string, nodeArgs: string[] = [], extraArgs: string[] = []): Promise<ControllerProc> {
    const log = openSync(logPath, 'a');
    // With the glibc malloc settings a deployment starts it with (common/src/malloc-env.ts, README).
    const proc = j.spawn(process.execPath, [...nodeArgs, FERRY, 'controller', 'start', '--data', dataDir, '--listen', listen, ...extraArgs], { stdio: ['ignore', log, 'pipe'], env: benchEnv() });
    closeSync(log);
    let stderr = '';
    const dial = await withTimeout(new Promise<{ host: string; port: number }>((res, rej) => {
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (d: string) => {
        stderr = (stderr + d).slice(-50_000);
        const m = /agents dial:\s+(\S+):(\d+)/.exec(stderr);
        if (m && /CA pin:/.test(stderr)) res({ host: m[1]!, port: Number(m[2]) });
      });
      proc.once('exit', (code) => rej(new Error(`controller exited with ${code} while starting:\n${stderr}`)));
    }), 60_000, 'controller start');
    proc.stderr!.on('data', () => undefined); // keep draining
    return new ControllerProc(j, proc, `${dial.host}:${dial.port}`, dataDir);
  }

  cpuMs(): number {
    return cpuMsOf(this.pid);
  }

  async stop(): Promise<void> {
    await this.j.stop(this.proc, 20_000);
  }
}

// ---- real agents ---------------------------------------------------------------------

export interface Enrolled { agentId: string; stateDir: string }

/**
 * `ferry-agent join` for each state dir, `parallel` at a time; `wrap(i)` is
 * put in front of the i-th command (`ip netns exec NS` to join from inside a
 * simulated site).
 */
export async function enrollAgents(j: Janitor, joinString: string, stateDirs: string[], parallel = 4, wrap: (i: number) => string[] = () => []): Promise<Enrolled[]> {
  const out: Enrolled[] = new Array(stateDirs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, stateDirs.length) }, async () => {
    for (let i = next++; i < stateDirs.length; i = next++) {
      const [file, ...args] = [...wrap(i), process.execPath, FERRY_AGENT, 'join', joinString, '--state', stateDirs[i]!, '--json'];
      const r = await runBounded(j, file!, args, 120_000);
      if (r.code !== 0) throw new Error(`ferry-agent join exited ${r.code}: ${r.stderr.trim()}`);
      out[i] = { agentId: (JSON.parse(r.stdout.trim()) as { agentId: string }).agentId, stateDir: stateDirs[i]! };
    }
  }));
  return out;
}

/** One `ferry-agent run` process. */
export class AgentProc {
  private constructor(private readonly j: Janitor, readonly proc: ChildProcess, readonly agentId: string, readonly stateDir: string) {}

  get pid(): number {
    return this.proc.pid!;
  }

  /** `wrap` goes in front of the command (`ip netns exec NS` to run it inside a simulated site). */
  static start(j: Janitor, a: Enrolled, logPath: string, nodeArgs: string[] = [], env: NodeJS.ProcessEnv = process.env, wrap: string[] = []): AgentProc {
    const log = openSync(logPath, 'a');
    // With the agent unit's glibc malloc settings (agent/src/service/unit-file.ts).
    const [file, ...args] = [...wrap, process.execPath, ...nodeArgs, FERRY_AGENT, 'run', '--state', a.stateDir];
    const proc = j.spawn(file!, args, { stdio: ['ignore', log, log], env: benchEnv(env) });
    closeSync(log);
    return new AgentProc(j, proc, a.agentId, a.stateDir);
  }

  mem(): { hwm: number; rss: number } {
    return memOf(this.pid);
  }

  cpuMs(): number {
    return cpuMsOf(this.pid);
  }

  async stop(): Promise<void> {
    await this.j.stop(this.proc, 15_000);
  }
}

/** Waits until the controller lists every id in `ids` as connected. */
export async function waitConnected(admin: Admin, ids: string[], timeoutMs: number): Promise<void> {
  const want = new Set(ids);
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { agents } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: false });
    const up = agents.filter((a) => want.has(a.id) && a.connected).length;
    if (up === want.size) return;
    if (Date.now() > until) throw new Error(`only ${up} of ${want.size} agents connected within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

// ---- results -------------------------------------------------------------------------

/**
 * Which code was measured: HEAD and how many tracked files differ from it
 * (build/ is compiled from the work tree, which others may be editing).
 */
export function sourceVersion(): string {
  // A run from a copy of build/ (so the work tree can change meanwhile) names the commit it was built from.
  if (process.env['FERRY_BENCH_SOURCE']) return process.env['FERRY_BENCH_SOURCE'];
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', REPO, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const changed = git('status', '--porcelain', '--untracked-files=no').split('\n').filter(Boolean).length;
    return `commit ${git('rev-parse', '--short', 'HEAD')}${changed ? ` + ${changed} uncommitted file change(s)` : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

export interface Row {
  metric: string;
  goal: string;
  measured: string;
  ratio: string;
  result: 'PASS' | 'FAIL' | 'info';
  value?: number;
  unit?: string;
}

export class Report {
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  readonly sections: string[] = [];
  readonly raw: Record<string, unknown> = {};
  readonly meta: Record<string, unknown>;

  constructor(readonly suite: string, readonly title: string, extra: Record<string, unknown>) {
    this.meta = {
      date: new Date().toISOString(), node: process.versions.node, cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? '?',
      memGiB: (totalmem() / GiB).toFixed(1), loadBefore: loadavg().map((l) => l.toFixed(2)).join(' '), source: sourceVersion(), ...extra,
    };
  }

  row(r: Omit<Row, 'goal' | 'ratio' | 'result'> & Partial<Pick<Row, 'goal' | 'ratio' | 'result'>>): void {
    this.rows.push({ goal: '—', ratio: '—', result: 'info', ...r });
  }

  markdown(): string {
    const esc = (s: string) => s.replace(/\|/g, '\\|');
    const m = this.meta;
    const src = m['source'] === m['sourceAfter'] ? `Source: ${m['source']}` : `Source: ${m['source']} at the start, ${m['sourceAfter']} at the end (the tree changed during the run)`;
    return [
      `# ${this.title}`, '', src, '',
      `${m['date']} · node ${m['node']} · ${m['cpus']} CPU(s) (${m['cpuModel']}) · ${m['memGiB']} GiB RAM · load average before/after ${m['loadBefore']} / ${m['loadAfter']}` +
        (m['mode'] ? ` · ${m['mode']}` : ''), '',
      '| Metric | Goal | Measured | Ratio | Result |', '|---|---|---|---|---|',
      ...this.rows.map((r) => `| ${esc(r.metric)} | ${esc(r.goal)} | ${esc(r.measured)} | ${esc(r.ratio)} | ${r.result} |`), '',
      ...this.sections,
      ...(this.notes.length ? ['## Notes', '', ...this.notes.map((n) => `- ${n}`), ''] : []),
    ].join('\n');
  }

  write(outDir: string): string {
    this.meta['loadAfter'] = loadavg().map((l) => l.toFixed(2)).join(' ');
    this.meta['sourceAfter'] = sourceVersion();
    mkdirSync(outDir, { recursive: true });
    const md = this.markdown();
    writeFileSync(join(outDir, `${this.suite}.md`), md);
    writeFileSync(join(outDir, `${this.suite}.json`), JSON.stringify({ meta: this.meta, rows: this.rows, notes: this.notes, raw: this.raw }, null, 2) + '\n');
    return md;
  }
}

export const fmtMiB = (bytes: number, digits = 1) => `${(bytes / MiB).toFixed(digits)} MiB`;
export const fmtRate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;
export const fmtMs = (x: number) => (Number.isFinite(x) ? (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : x >= 100 ? `${Math.round(x)} ms` : `${x.toFixed(2)} ms`) : 'n/a');
export const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

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

// ---- machine-wide counters -----------------------------------------------------------

export interface SysSnap { t: number; cpu: number[]; readBytes: number; writtenBytes: number }

/** /proc/stat's cpu line and the whole disks' byte counters from /proc/diskstats. */
export function sysSnap(): SysSnap {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  let readBytes = 0;
  let writtenBytes = 0;
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^((vd|sd|xvd|hd)[a-z]+|nvme\d+n\d+)$/.test(f[2]!)) continue;
    readBytes += Number(f[5]) * 512;
    writtenBytes += Number(f[9]) * 512;
  }
  return { t: performance.now(), cpu, readBytes, writtenBytes };
}

export interface SysDelta {
  wallMs: number;
  busyPct: number;
  iowaitPct: number;
  /** CPU ms used on all cores by everything (USER_HZ = 100). */
  busyCpuMs: number;
  diskReadBytes: number;
  diskWrittenBytes: number;
}

/** Machine CPU use (all cores = 100%) and disk traffic between two snapshots. */
export function sysDelta(a: SysSnap, b: SysSnap): SysDelta {
  const d = b.cpu.map((x, i) => x - (a.cpu[i] ?? 0));
  const total = d.slice(0, 8).reduce((s, x) => s + x, 0) || 1;
  const idle = (d[3] ?? 0) + (d[4] ?? 0);
  return {
    wallMs: b.t - a.t, busyPct: ((total - idle) / total) * 100, iowaitPct: ((d[4] ?? 0) / total) * 100, busyCpuMs: (total - idle) * 10,
    diskReadBytes: b.readBytes - a.readBytes, diskWrittenBytes: b.writtenBytes - a.writtenBytes,
  };
}
