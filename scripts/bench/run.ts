/**
 * Foundation benchmark (not a test, it asserts nothing and writes a table).
 * `npm run bench` runs every suite (suites.ts); this one alone, with its options:
 *
 *   node build/scripts/bench/run.js --suite foundation [--agents 500] [--procs 2] [--rounds 5]
 *                                   [--out bench-results] [--timeout-min M] [--join-timeout-ms MS]
 *                                   [--profile] [--keep]
 *
 * --profile samples the enrollment controller's CPU and diffs heap snapshots
 * without and with the sessions (the heap diff also runs by itself when the
 * memory goal is missed); --keep keeps the temp directory.
 *
 * 1. Enrollment: N simulated agents (the real agent code, in `--procs` child
 *    processes) join one controller at once; rate = N / wall time of all joins,
 *    agent-side key generation and CSR included.
 * 2. Idle sessions: the controller is restarted on the same port (a clean
 *    process, so enrollment garbage is not counted), N session loops connect,
 *    and after a settle the controller's RSS (/proc/PID/status) is compared
 *    with its settled baseline; per session = delta / N.
 * 3. Fan-out: `exec echo hi` to all N through the admin API (what `ferry exec`
 *    uses), `--rounds` times, plus one round through the real CLI; per-host
 *    latency is from sending the request to that host's first output line.
 * 4. Peers, for context: plain Node TLS + HTTPS for the enrollment handshakes,
 *    plain Node HTTP/2 over mTLS for the idle connections, plain spawn() for
 *    the fan-out's process starts.
 *
 * The controller runs as `node bin/ferry.js controller start` in a process of
 * its own, with controller-probe.js preloaded for GC and heap figures. Only
 * 127.0.0.1 is used. Every child process and temp directory is removed at the
 * end, also on failure or Ctrl-C.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { ExecEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { summarizeCpuProfile, type CpuSummary } from './cpuprof.js';
import { heapGrowth, summarizeSnapshot, type HeapGrowth } from './heap.js';
import { FleetProcs } from './fleet-procs.js';
import { fdLimit, nodeCommand, procCpuMs, Rpc, sleep, stats, withTimeout, type ProcMem, type Stats } from './lib.js';
import { dispatchSuite } from './suites.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/scripts/bench
const repo = resolve(here, '../../..');
const FERRY = join(repo, 'bin/ferry.js');

// `--suite bundles|steps`, and no --suite at all (every suite), are run by
// suites.ts and never return; `--suite foundation` (and --quick) comes back here.
await dispatchSuite();

// ---- options ---------------------------------------------------------------

const { values: opt } = parseArgs({
  options: {
    agents: { type: 'string', default: '500' },
    procs: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    out: { type: 'string', default: join(repo, 'bench-results') },
    'timeout-min': { type: 'string' },
    'join-timeout-ms': { type: 'string', default: '120000' },
    profile: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
  strict: true,
});
const N = Number(opt.agents);
const ROUNDS = Number(opt.rounds);
const PROCS = Math.max(1, Math.min(N, Number(opt.procs ?? (N >= 100 ? 2 : 1))));
if (!Number.isInteger(N) || N < 1 || N > 5000 || !Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 50 || !Number.isInteger(PROCS)) {
  process.stderr.write('usage: run.js --suite foundation [--agents 1..5000] [--procs P] [--rounds 1..50] [--out DIR] [--timeout-min M] [--join-timeout-ms MS] [--profile] [--keep]\n');
  process.exit(2);
}
const TIMEOUT_MIN = Number(opt['timeout-min'] ?? Math.ceil(6 + N / 50));
/** Deadline of each join's Enroll call; the agent's own default is 30 s, the bench allows more so that a slow run still measures a rate. */
const JOIN_TIMEOUT_MS = Number(opt['join-timeout-ms']);
const OUT = resolve(opt.out!);
const LOGS = join(OUT, 'foundation-logs');

// Goals from the issue, for 500 agents; enrollment scales linearly with N.
const GOAL_ENROLL_S = 20 * (N / 500);
const GOAL_SESSION_KIB = 100;
const SETTLE_MS = 5_000;
/** A second, longer look without forced GC: V8's own idle-time heap shrinking has run by then. */
const LONG_SETTLE_MS = 25_000;
const ENROLL_BODY_BYTES = 2048; // peer request/response size, about a CSR + facts and a cert + CA
const ENROLL_REPLY_BYTES = 2048;

// ---- process bookkeeping and cleanup ----------------------------------------

const children = new Set<ChildProcess>();
const tmp = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
let cleaning: Promise<void> | undefined;

function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function exited(c: ChildProcess): boolean {
  return c.exitCode !== null || c.signalCode !== null;
}

function waitExit(c: ChildProcess, ms: number): Promise<boolean> {
  if (exited(c)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    c.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; only processes this run started. */
async function stopChild(c: ChildProcess, graceMs = 10_000): Promise<void> {
  if (!exited(c)) {
    c.kill('SIGTERM');
    if (!(await waitExit(c, graceMs))) {
      c.kill('SIGKILL');
      await waitExit(c, 5_000);
    }
  }
  children.delete(c);
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c, 5_000)));
    if (!opt.keep) rmSync(tmp, { recursive: true, force: true });
    else progress(`kept ${tmp}`);
  })();
  return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    progress(`${sig}: cleaning up`);
    void cleanup().then(() => process.exit(130));
  });
}

/**
 * Spawns a child with an IPC channel; raises its open-files limit through
 * the shell when this process's soft limit is below `needFds`.
 */
function spawnNode(args: string[], needFds: number, stdio: SpawnOptions['stdio']): ChildProcess {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERRY_')));
  const cmd = nodeCommand(args, needFds);
  const c = spawn(cmd.file, cmd.args, { stdio, env });
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

// ---- the controller under test ----------------------------------------------

class ControllerProc {
  private constructor(readonly proc: ChildProcess, readonly rpc: Rpc, readonly port: number, readonly dataDir: string) {}

  get pid(): number {
    return this.proc.pid!;
  }

  static async start(dataDir: string, listen: string, logName: string, nodeArgs: string[] = []): Promise<ControllerProc> {
    const log = openSync(join(LOGS, logName), 'w');
    const proc = spawnNode([
      '--expose-gc', ...nodeArgs, '--import', pathToFileURL(join(here, 'controller-probe.js')).href,
      FERRY, 'controller', 'start', '--data', dataDir, '--listen', listen,
    ], N * 2 + 512, ['ignore', log, 'pipe', 'ipc']);
    closeSync(log);
    const rpc = new Rpc(proc, 'controller');
    let stderr = '';
    const port = await withTimeout(new Promise<number>((resolve, reject) => {
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (d: string) => {
        stderr += d;
        const m = /agents dial:\s+\S+:(\d+)/.exec(stderr);
        if (m && /CA pin:/.test(stderr)) resolve(Number(m[1]));
      });
      proc.once('exit', (code) => reject(new Error(`controller exited with ${code} while starting:\n${stderr}`)));
    }), 60_000, 'controller start');
    // Keep draining stderr into the log of this run.
    proc.stderr!.on('data', (d: string) => { stderr = (stderr + d).slice(-20_000); });
    return new ControllerProc(proc, rpc, port, dataDir);
  }

  mem(gc: boolean): Promise<ControllerMem> {
    return this.rpc.call<ControllerMem>('mem', { gc }, 60_000);
  }

  cpuMs(): number {
    return procCpuMs(this.pid);
  }

  async stop(): Promise<void> {
    await stopChild(this.proc, 20_000);
  }
}

interface ControllerMem {
  proc: ProcMem;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  mallocedMemory: number;
  totalPhysicalSize: number;
  resources: Record<string, number>;
}

// ---- the simulated agents -----------------------------------------------------

interface Concurrent { wallMs: number; latencies: number[]; errors: Record<string, number> }

function merge(rs: Concurrent[]): { latencies: number[]; errors: Record<string, number> } {
  const errors: Record<string, number> = {};
  for (const r of rs) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return { latencies: rs.flatMap((r) => r.latencies), errors };
}

/**
 * Memory after `SETTLE_MS` of quiet as is, optionally again after `longMs`
 * more, then after forced GCs repeated until RSS stops moving (V8 shrinks
 * its heap only over a few collections, which would otherwise show up as
 * noise in a delta).
 */
async function settledMem<M extends { proc: ProcMem }>(mem: (gc: boolean) => Promise<M>, longMs = 0): Promise<{ noGc: M; noGcLong?: M; gc: M }> {
  await sleep(SETTLE_MS);
  const noGc = await mem(false);
  let noGcLong: M | undefined;
  if (longMs > 0) {
    await sleep(longMs);
    noGcLong = await mem(false);
  }
  let prev = await mem(true);
  for (let i = 0; i < 6; i++) {
    await sleep(1_000);
    const m = await mem(true);
    const stable = Math.abs(m.proc.vmRssKiB - prev.proc.vmRssKiB) < 256;
    prev = m;
    if (stable) break;
  }
  return { noGc, noGcLong, gc: prev };
}

async function connectedCount(admin: Admin): Promise<number> {
  const { agents } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: false });
  return agents.filter((a) => a.connected).length;
}

async function waitConnected(admin: Admin, want: number, timeoutMs: number): Promise<number> {
  const until = Date.now() + timeoutMs;
  let n = await connectedCount(admin);
  while (n !== want && Date.now() < until) {
    await sleep(250);
    n = await connectedCount(admin);
  }
  return n;
}

// ---- fan-out --------------------------------------------------------------------

interface Round {
  via: 'admin-api' | 'cli';
  firstLineMs: number[];
  summaryMs: number;
  /** Send → the last host's `started` event, which the controller emits as it sends that host's execStart. */
  dispatchMs?: number;
  summary?: { matched: number; succeeded: number; failed: number; offline: number };
  controllerCpuMs: number;
  /** Per host, from the agent side (ms): send → execStart at the agent, → spawn returned, → first line produced; first line produced → seen by the operator. */
  breakdown?: { toAgent: number[]; spawn: number[]; toFirstLine: number[]; back: number[] };
}

/** Wall-clock time in ms with sub-ms precision, comparable with the fleet processes' clocks. */
const epochNow = () => performance.timeOrigin + performance.now();

async function execRound(admin: Admin, ctl: ControllerProc, fleet: FleetProcs): Promise<Round> {
  await fleet.all('jobTimes', {}, 10_000); // forget earlier rounds
  const cpu0 = ctl.cpuMs();
  const first = new Map<string, number>();
  const firstEpoch = new Map<string, number>();
  let summaryMs = Number.NaN;
  let dispatchMs = Number.NaN;
  let summary: Round['summary'];
  const sentEpoch = epochNow();
  const t0 = performance.now();
  const stream = admin.exec({ selector: '', hosts: [], all: true, argv: ['echo', 'hi'], timeoutMs: 60_000, concurrency: 0, env: {}, cwd: '' });
  try {
    await withTimeout(new Promise<void>((resolve, reject) => {
      stream.on('data', (ev: ExecEvent) => {
        const now = performance.now() - t0;
        if (ev.event?.$case === 'started') dispatchMs = now;
        if (ev.event?.$case === 'line' && !first.has(ev.event.value.agentId)) {
          first.set(ev.event.value.agentId, now);
          firstEpoch.set(ev.event.value.agentId, epochNow());
        }
        if (ev.event?.$case === 'summary') {
          summaryMs = now;
          summary = ev.event.value;
        }
      });
      stream.on('error', reject);
      stream.on('end', resolve);
    }), 120_000, 'exec round');
  } catch (err) {
    stream.cancel();
    throw err;
  }
  const cpu = ctl.cpuMs() - cpu0;
  const times = Object.assign({}, ...(await fleet.all<Record<string, { arrived: number; spawned?: number; firstLine?: number }>>('jobTimes', {}, 10_000))) as
    Record<string, { arrived: number; spawned?: number; firstLine?: number }>;
  const breakdown: NonNullable<Round['breakdown']> = { toAgent: [], spawn: [], toFirstLine: [], back: [] };
  for (const [jobId, t] of Object.entries(times)) {
    const agentId = /^x-[0-9a-f]+-(.+)$/.exec(jobId)?.[1] ?? '';
    breakdown.toAgent.push(t.arrived - sentEpoch);
    if (t.spawned !== undefined) breakdown.spawn.push(t.spawned - t.arrived);
    if (t.firstLine !== undefined) {
      breakdown.toFirstLine.push(t.firstLine - t.arrived);
      const seen = firstEpoch.get(agentId);
      if (seen !== undefined) breakdown.back.push(seen - t.firstLine);
    }
  }
  return { via: 'admin-api', firstLineMs: [...first.values()], summaryMs, dispatchMs, summary, controllerCpuMs: cpu, breakdown };
}

/** One round through the real `ferry exec --json` CLI; times include its start-up. */
async function execRoundCli(dataDir: string, ctl: ControllerProc): Promise<Round> {
  const cpu0 = ctl.cpuMs();
  const first = new Map<string, number>();
  let summaryMs = Number.NaN;
  let summary: Round['summary'];
  const t0 = performance.now();
  const proc = spawnNode([FERRY, '--data', dataDir, 'exec', '--all', '--json', '--', 'echo', 'hi'], 256, ['ignore', 'pipe', 'pipe', 'ipc']);
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-4000); });
  const rl = createInterface({ input: proc.stdout! });
  rl.on('line', (l) => {
    const now = performance.now() - t0;
    try {
      // The exec.* records of docs/json.md.
      const ev = JSON.parse(l) as { type: string; agentId?: string; matched?: number; succeeded?: number; failed?: number; offline?: number };
      if (ev.type === 'line' && !first.has(ev.agentId!)) first.set(ev.agentId!, now);
      if (ev.type === 'summary') {
        summaryMs = now;
        summary = { matched: ev.matched!, succeeded: ev.succeeded!, failed: ev.failed!, offline: ev.offline! };
      }
    } catch {
      // not an event line
    }
  });
  if (!(await waitExit(proc, 120_000))) {
    await stopChild(proc, 2_000);
    throw new Error('ferry exec CLI did not finish within 120 s');
  }
  if (!summary) throw new Error(`ferry exec CLI ended without a summary (exit ${proc.exitCode}): ${stderr}`);
  return { via: 'cli', firstLineMs: [...first.values()], summaryMs, summary, controllerCpuMs: ctl.cpuMs() - cpu0 };
}

// ---- reporting --------------------------------------------------------------------

interface Row {
  metric: string;
  goal: string;
  measured: string;
  result: 'PASS' | 'FAIL' | 'info';
  value?: number;
  unit?: string;
}

const rows: Row[] = [];
const notes: string[] = [];
const raw: Record<string, unknown> = {};

function row(metric: string, measured: string, extra: Partial<Row> = {}): void {
  rows.push({ metric, goal: '—', result: 'info', measured, ...extra });
}

const ms = (x: number) => (Number.isFinite(x) ? (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`) : 'n/a');
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const pct = (s: Stats) => `p50 ${ms(s.p50)} · p99 ${ms(s.p99)} · max ${ms(s.max)}`;

function markdown(meta: Record<string, unknown>, profile?: { growth: HeapGrowth[]; n: number }, cpu?: CpuSummary & { enrollments: number }): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [
    `# Ferry foundation benchmark — ${N} agents`,
    '',
    `Source: ${meta['source']}`,
    '',
    `${meta['date']} · node ${meta['node']} · ${meta['cpus']} CPU(s) (${meta['cpuModel']}) · ${meta['memGiB']} GiB RAM · ` +
      `load average before/after ${meta['loadBefore']} / ${meta['loadAfter']} · open-files limit ${meta['fdLimit']} · ` +
      `${PROCS} agent process(es) · ${ROUNDS} fan-out round(s)`,
    '',
    '| Metric | Goal | Measured | Result |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${esc(r.metric)} | ${esc(r.goal)} | ${esc(r.measured)} | ${r.result} |`),
    '',
  ];
  if (profile) {
    lines.push(`## Where the controller's heap goes per session (V8 heap snapshots without and with ${profile.n} sessions; native objects count only the memory Node reports to V8)`, '',
      '| Object group (self size) | Count / session | Bytes / session |', '|---|---|---|',
      ...profile.growth.map((g) => `| ${esc(g.what)} | ${(g.countDelta / profile.n).toFixed(2)} | ${(g.bytesDelta / profile.n).toFixed(0)} |`), '');
  }
  if (cpu) {
    const per = (x: number) => (x / Math.max(1, cpu.enrollments)).toFixed(2);
    const share = (x: number) => `${((x / cpu.busyMs) * 100).toFixed(0)}%`;
    lines.push(`## Where the controller's CPU goes during enrollment (${cpu.windowed ? 'samples from the concurrent joins' : 'whole process life'}: ${(cpu.busyMs / 1000).toFixed(1)} s busy on the main thread for ${cpu.enrollments} enrollments)`, '',
      '| Area (self time) | ms / enrollment | Share |', '|---|---|---|',
      ...cpu.byArea.map((a) => `| ${esc(a.what)} | ${per(a.ms)} | ${share(a.ms)} |`), '',
      '| Function (self time) | ms / enrollment | Share |', '|---|---|---|',
      ...cpu.byFunction.map((f) => `| ${esc(f.what)} | ${per(f.ms)} | ${share(f.ms)} |`), '');
  }
  if (notes.length) lines.push('## Notes', '', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

// ---- the run ------------------------------------------------------------------------

/** Which code was measured: commit, and whether the work tree differed from it. */
function sourceVersion(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const changed = git('status', '--porcelain', '--untracked-files=no').split('\n').filter(Boolean).length;
    return `commit ${git('rev-parse', '--short', 'HEAD')}${changed ? ` + ${changed} uncommitted file change(s)` : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

async function main(): Promise<number> {
  mkdirSync(LOGS, { recursive: true });
  const fd = fdLimit();
  const meta: Record<string, unknown> = {
    date: new Date().toISOString(), node: process.versions.node, cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? '?',
    memGiB: (totalmem() / 2 ** 30).toFixed(1), loadBefore: loadavg().map((l) => l.toFixed(2)).join(' '),
    fdLimit: `${fd.soft}/${fd.hard}`, agents: N, procs: PROCS, rounds: ROUNDS, tmp, source: sourceVersion(),
  };
  if (N < 200) notes.push(`with only ${N} agents, the RSS deltas per session are within the noise of V8's heap sizing (a few MiB); use the default 500 for memory figures`);
  if (fd.soft < N * 2 + 512) {
    notes.push(fd.hard >= N * 2 + 512
      ? `open-files soft limit ${fd.soft} is low for ${N} agents; children were started with \`ulimit -n\` raised`
      : `open-files hard limit ${fd.hard} may be too low for ${N} agents (needs about ${N * 2 + 512} in the controller)`);
  }
  const dataDir = join(tmp, 'controller');
  const stateRoot = join(tmp, 'agents');
  mkdirSync(stateRoot, { recursive: true });

  // ---- 1. enrollment ----
  progress(`starting the controller (data ${dataDir})`);
  // With --profile, the enrollment controller samples its CPU; the profile is written when it stops.
  const cpuProfDir = join(tmp, 'cpuprof');
  let ctl = await ControllerProc.start(dataDir, '127.0.0.1:0', 'controller-enroll.log',
    opt.profile ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : []);
  const port = ctl.port;
  const address = `127.0.0.1:${port}`;
  await sleep(1_000);
  const enrollBase = await ctl.mem(true);
  progress(`controller pid ${ctl.pid} on ${address}, RSS ${kib(enrollBase.proc.vmRssKiB * 1024)}`);

  progress(`starting ${PROCS} agent process(es) for ${N} agents`);
  const fleet = await FleetProcs.start(spawnNode, N, PROCS, stateRoot, LOGS);

  progress('agent-side key generation + CSR alone (no network)');
  const keygen = await fleet.all<Concurrent>('keygen', {}, 300_000);
  const keygenWall = Math.max(...keygen.map((k) => k.wallMs));

  let admin = Admin.connect({ data: dataDir });
  const { joinString } = await admin.call(admin.client.createToken, { ttlMs: 3_600_000, maxUses: N, labels: [{ key: 'bench', value: 'foundation' }] });

  progress(`enrolling ${N} agents at once`);
  const cpuCtl0 = ctl.cpuMs();
  const cpuFleet0 = fleet.cpuMs();
  const tJoin = performance.now();
  const joinFromUs = Number(process.hrtime.bigint() / 1000n);
  const joins = await fleet.all<Concurrent & { ok: number }>('join', { joinString, timeoutMs: JOIN_TIMEOUT_MS }, JOIN_TIMEOUT_MS + 180_000);
  const enrollWallMs = performance.now() - tJoin;
  const joinToUs = Number(process.hrtime.bigint() / 1000n);
  const ctlEnrollCpu = ctl.cpuMs() - cpuCtl0;
  const fleetEnrollCpu = fleet.cpuMs() - cpuFleet0;
  const enrolled = joins.reduce((s, j) => s + j.ok, 0);
  const joinMerged = merge(joins);
  const joinLat = stats(joinMerged.latencies);
  const enrollMemNoGc = await ctl.mem(false);
  const enrollMemGc = await ctl.mem(true);
  raw['enroll'] = { joinTimeoutMs: JOIN_TIMEOUT_MS, wallMs: enrollWallMs, enrolled, errors: joinMerged.errors, latency: joinLat, controllerCpuMs: ctlEnrollCpu, agentsCpuMs: fleetEnrollCpu, keygenWallMs: keygenWall, memBefore: enrollBase, memAfterNoGc: enrollMemNoGc, memAfterGc: enrollMemGc };
  progress(`enrolled ${enrolled}/${N} in ${ms(enrollWallMs)} (${(enrolled / (enrollWallMs / 1000)).toFixed(1)}/s)`);

  const rate = enrolled / (enrollWallMs / 1000);
  rows.push({
    metric: `Enroll ${N} agents concurrently (wall time, agent key + CSR included)`,
    goal: `< ${GOAL_ENROLL_S.toFixed(GOAL_ENROLL_S < 10 ? 1 : 0)} s`,
    measured: `${(enrollWallMs / 1000).toFixed(2)} s (${enrolled}/${N} enrolled)`,
    result: enrolled === N && enrollWallMs / 1000 < GOAL_ENROLL_S ? 'PASS' : 'FAIL', value: enrollWallMs / 1000, unit: 's',
  });
  rows.push({ metric: 'Enrollment rate', goal: '≥ 25 /s', measured: `${rate.toFixed(1)} /s`, result: enrolled === N && rate >= 25 ? 'PASS' : 'FAIL', value: rate, unit: '1/s' });
  row('Per-join latency (start of join → state written)', pct(joinLat), { value: joinLat.p99, unit: 'ms' });
  if (joinLat.max > 30_000) notes.push(`some joins took longer than the agent's default 30 s enrollment deadline (max ${ms(joinLat.max)}); the bench allowed ${JOIN_TIMEOUT_MS / 1000} s`);
  const { agents: enrolledRows } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: true });
  const { tokens } = await admin.call(admin.client.listTokens, {});
  const usesSpent = tokens.reduce((a, t) => a + t.uses, 0);
  row('Enrolled on the controller / token uses spent / agents holding a certificate', `${enrolledRows.length} / ${usesSpent} / ${enrolled}`,
    { goal: 'all equal', result: enrolledRows.length === enrolled && usesSpent === enrolled ? 'PASS' : 'FAIL' });
  row('CPU per enrollment: controller / agent side', `${(ctlEnrollCpu / N).toFixed(1)} ms / ${(fleetEnrollCpu / N).toFixed(1)} ms (${cpus().length} cores shared)`);
  row('… controller alone: enrollments per CPU-second (ceiling without the simulated agents on the same cores)', `${(1000 / (ctlEnrollCpu / N)).toFixed(0)} /s`);
  if (Object.keys(joinMerged.errors).length) notes.push(`join errors: ${JSON.stringify(joinMerged.errors)}`);

  // ---- 2. idle sessions, on a fresh controller process ----
  progress('restarting the controller on the same port for a clean session baseline');
  admin.close();
  await ctl.stop();
  let cpuProfile: (CpuSummary & { enrollments: number }) | undefined;
  if (opt.profile) {
    const file = existsSync(cpuProfDir) ? readdirSync(cpuProfDir).find((f) => f.endsWith('.cpuprofile')) : undefined;
    if (file) {
      cpuProfile = { ...summarizeCpuProfile(join(cpuProfDir, file), 15, { fromUs: joinFromUs, toUs: joinToUs }), enrollments: enrolled };
      if (!cpuProfile.windowed) notes.push('the CPU profile could not be cut to the enrollment window; it covers the controller\'s whole life, start-up included');
      raw['enrollCpuProfile'] = cpuProfile;
    } else {
      notes.push('the enrollment controller wrote no CPU profile');
    }
  }
  ctl = await ControllerProc.start(dataDir, address, 'controller-sessions.log');
  admin = Admin.connect({ data: dataDir });
  const baseSettled = await settledMem((gc) => ctl.mem(gc));
  const base = baseSettled.gc;
  progress(`controller pid ${ctl.pid}, settled baseline RSS ${kib(base.proc.vmRssKiB * 1024)}`);

  progress(`connecting ${enrolled} sessions`);
  const cpuSess0 = ctl.cpuMs();
  const sess = await fleet.all<{ wallMs: number; want: number; connected: number; connectMs: number[]; states: Record<string, number> }>('sessionsStart', { timeoutMs: 120_000 }, 180_000);
  const sessWallMs = Math.max(...sess.map((s) => s.wallMs));
  const sessConnected = sess.reduce((s, x) => s + x.connected, 0);
  const sessConnect = stats(sess.flatMap((s) => s.connectMs));
  const seenByController = await waitConnected(admin, enrolled, 30_000);
  const sessCpu = ctl.cpuMs() - cpuSess0;
  progress(`${sessConnected} agents connected (controller sees ${seenByController}) in ${ms(sessWallMs)}; settling ${SETTLE_MS / 1000} s`);
  const { noGc: idleNoGc, noGcLong: idleNoGcLong, gc: idleGc } = await settledMem((gc) => ctl.mem(gc), LONG_SETTLE_MS);
  const stillConnected = await connectedCount(admin);
  const perSessionGc = ((idleGc.proc.vmRssKiB - base.proc.vmRssKiB) * 1024) / Math.max(1, stillConnected);
  const perSessionNoGc = ((idleNoGc.proc.vmRssKiB - baseSettled.noGc.proc.vmRssKiB) * 1024) / Math.max(1, stillConnected);
  raw['sessions'] = { wallMs: sessWallMs, connected: sessConnected, seenByController, stillConnected, connect: sessConnect, states: sess.map((s) => s.states), controllerCpuMs: sessCpu, baseNoGc: baseSettled.noGc, base, idleNoGc, idleNoGcLong, idleGc };

  row(`Connect ${enrolled} sessions to a freshly started controller`, `${sessConnected}/${enrolled} in ${ms(sessWallMs)} (${pct(sessConnect)})`);
  rows.push({
    metric: `Controller RSS per idle session (${stillConnected} sessions, ${SETTLE_MS / 1000} s settle + forced GC)`,
    goal: `< ${GOAL_SESSION_KIB} KiB`, measured: kib(perSessionGc),
    result: stillConnected === N && perSessionGc < GOAL_SESSION_KIB * 1024 ? 'PASS' : 'FAIL', value: perSessionGc / 1024, unit: 'KiB',
  });
  const perSessionLong = ((idleNoGcLong!.proc.vmRssKiB - baseSettled.noGc.proc.vmRssKiB) * 1024) / Math.max(1, stillConnected);
  row(`… same, without forced GC (what \`top\` shows) after ${SETTLE_MS / 1000} s / ${(SETTLE_MS + LONG_SETTLE_MS) / 1000} s`, `${kib(perSessionNoGc)} / ${kib(perSessionLong)}`);
  row('Controller RSS: settled baseline → with sessions (forced GC; peak)', `${mib(base.proc.vmRssKiB * 1024)} → ${mib(idleGc.proc.vmRssKiB * 1024)} (peak ${mib(idleGc.proc.vmHwmKiB * 1024)})`);
  const per = (a: number, b: number) => kib((b - a) / Math.max(1, stillConnected));
  row('… per session: JS heap used / external (of which ArrayBuffers) / anonymous RSS',
    `${per(base.heapUsed, idleGc.heapUsed)} / ${per(base.external, idleGc.external)} (${per(base.arrayBuffers, idleGc.arrayBuffers)}) / ${per(base.proc.rssAnonKiB * 1024, idleGc.proc.rssAnonKiB * 1024)}`);
  row('Controller RSS after enrollment (first process, for reference)', `${mib(enrollBase.proc.vmRssKiB * 1024)} → ${mib(enrollMemGc.proc.vmRssKiB * 1024)} after ${enrolled} enrollments`);

  // ---- 3. fan-out ----
  type FleetMem = { rss: number; heapUsed: number; external: number; resources: Record<string, number> };
  let fleetMem0: FleetMem[] | undefined;
  const rounds: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // The first round warms up the agents' code; their memory is compared from after it.
    if (r === 1) fleetMem0 = await fleet.all<FleetMem>('mem', { gc: true }, 30_000);
    progress(`exec fan-out round ${r + 1}/${ROUNDS}`);
    const r1 = await execRound(admin, ctl, fleet);
    rounds.push(r1);
    const f1 = stats(r1.firstLineMs);
    progress(`  first line min ${ms(f1.min)} · p50 ${ms(f1.p50)} · max ${ms(f1.max)}; controller CPU ${r1.controllerCpuMs} ms`);
    await sleep(1_000);
  }
  const fleetMem1 = await fleet.all<FleetMem>('mem', { gc: true }, 30_000);
  const sum = (xs: FleetMem[], k: 'heapUsed' | 'rss') => xs.reduce((a, m) => a + m[k], 0);
  const jobsRun = stillConnected * (ROUNDS - 1);
  raw['agentMem'] = { before: fleetMem0, after: fleetMem1, jobs: jobsRun };
  progress('exec fan-out through the ferry CLI');
  rounds.push(await execRoundCli(dataDir, ctl));
  const apiRounds = rounds.filter((r) => r.via === 'admin-api');
  const cli = rounds.find((r) => r.via === 'cli')!;
  const fan = stats(apiRounds.flatMap((r) => r.firstLineMs));
  const fanSummary = stats(apiRounds.map((r) => r.summaryMs));
  const lastFirstLine = stats(apiRounds.map((r) => Math.max(...r.firstLineMs)));
  const fanOk = apiRounds.every((r) => r.summary?.succeeded === stillConnected && r.firstLineMs.length === stillConnected);
  const cliStats = stats(cli.firstLineMs);
  raw['fanout'] = { rounds, firstLine: fan, summary: fanSummary, cli: { firstLine: cliStats, summaryMs: cli.summaryMs, summary: cli.summary } };
  row(`exec fan-out to ${stillConnected}: send → host's first line (${apiRounds.length} rounds, admin API)`, `${pct(fan)}`, { value: fan.p99, unit: 'ms' });
  const bd = (k: keyof NonNullable<Round['breakdown']>) => stats(apiRounds.flatMap((r) => r.breakdown?.[k] ?? []));
  const dispatch = stats(apiRounds.map((r) => r.dispatchMs ?? Number.NaN).filter(Number.isFinite));
  row(`… controller dispatch: send → \`started\` event of the last of ${stillConnected} hosts (execStart written to every session)`, `median ${ms(dispatch.p50)} · worst ${ms(dispatch.max)}`);
  row('… of which: send → execStart handled by the agent (dispatch, delivery, and waiting behind the other agents of its process)', pct(bd('toAgent')));
  row('… of which: execStart → first line produced at the agent (spawn queued behind the other agents of its process)', `${pct(bd('toFirstLine'))} (spawn() call alone: p50 ${ms(bd('spawn').p50)})`);
  row('… of which: first line at the agent → at the operator (outbox, session, controller, admin stream)', pct(bd('back')));
  row('… send → last host\'s first line / → summary (all hosts finished)', `median ${ms(lastFirstLine.p50)} / ${ms(fanSummary.p50)} · worst ${ms(lastFirstLine.max)} / ${ms(fanSummary.max)}`);
  row('… controller CPU per round', `${ms(stats(apiRounds.map((r) => r.controllerCpuMs)).p50)} (${(stats(apiRounds.map((r) => r.controllerCpuMs)).p50 / stillConnected).toFixed(2)} ms per host)`);
  row('… every host answered in every round', fanOk ? 'yes' : `no: ${JSON.stringify(apiRounds.map((r) => ({ lines: r.firstLineMs.length, ...r.summary })))}`, { result: fanOk ? 'PASS' : 'FAIL', goal: 'all hosts' });
  row('`ferry exec --json -- echo hi` (CLI, from spawning the CLI, node start-up included, 1 round)', `${pct(cliStats)} · summary ${ms(cli.summaryMs)} · ${cli.summary?.succeeded}/${cli.summary?.matched} ok`);
  if (fleetMem0) {
    row(`Agent side: JS heap growth per exec job (forced GC, rounds 2–${ROUNDS}, all agent processes)`,
      `${((sum(fleetMem1, 'heapUsed') - sum(fleetMem0, 'heapUsed')) / Math.max(1, jobsRun)).toFixed(0)} bytes per job ` +
      `(${mib(sum(fleetMem0, 'heapUsed'))} → ${mib(sum(fleetMem1, 'heapUsed'))} heap, ${mib(sum(fleetMem0, 'rss'))} → ${mib(sum(fleetMem1, 'rss'))} RSS for ${stillConnected} agents)`);
  }
  const afterFan = await ctl.mem(true);
  row('Controller RSS after the fan-out rounds (forced GC)', mib(afterFan.proc.vmRssKiB * 1024));

  // ---- optional: where does per-session memory go ----
  let profile: { growth: HeapGrowth[]; n: number } | undefined;
  if (opt.profile || perSessionGc >= GOAL_SESSION_KIB * 1024) {
    progress('profiling: heap snapshots without and with sessions');
    await fleet.all('sessionsStop', {}, 60_000);
    const left = await waitConnected(admin, 0, 30_000);
    const afterClose = (await settledMem((gc) => ctl.mem(gc))).gc;
    const snapA = await ctl.rpc.call<string>('snapshot', { path: join(tmp, 'without.heapsnapshot') }, 300_000);
    const again = await fleet.all<{ connected: number }>('sessionsStart', { timeoutMs: 120_000 }, 180_000);
    const n2 = await waitConnected(admin, enrolled, 30_000);
    await sleep(SETTLE_MS);
    await ctl.mem(true);
    const snapB = await ctl.rpc.call<string>('snapshot', { path: join(tmp, 'with.heapsnapshot') }, 300_000);
    const growth = heapGrowth(summarizeSnapshot(snapA), summarizeSnapshot(snapB), 25);
    profile = { growth, n: n2 };
    raw['profile'] = { leftConnected: left, afterClose, reconnected: again.reduce((s, a) => s + a.connected, 0), n: n2, growth,
      snapshotBytes: [statSync(snapA).size, statSync(snapB).size] };
    // Churn: close them all a second time; what a connect/close cycle leaves behind shows as growth.
    await fleet.all('sessionsStop', {}, 60_000);
    const left2 = await waitConnected(admin, 0, 30_000);
    const afterClose2 = (await settledMem((gc) => ctl.mem(gc))).gc;
    (raw['profile'] as Record<string, unknown>)['afterClose2'] = afterClose2;
    row(`Session churn (leak check): after closing all ${enrolled} sessions, 1st → 2nd time`,
      `JS heap ${mib(afterClose.heapUsed)} → ${mib(afterClose2.heapUsed)} (${kib((afterClose2.heapUsed - afterClose.heapUsed) / Math.max(1, enrolled))}/session), ` +
      `external ${mib(afterClose.external)} → ${mib(afterClose2.external)}; ${left} / ${left2} left connected (RSS is not compared: the heap snapshot in between inflates it)`);
  }

  progress('stopping sessions and the controller');
  await fleet.all('sessionsStop', {}, 60_000);
  admin.close();
  const ctlPem = {
    certChainPem: readFileSync(join(dataDir, 'pki/server.crt'), 'utf8') + readFileSync(join(dataDir, 'pki/ca.crt'), 'utf8'),
    keyPem: readFileSync(join(dataDir, 'pki/server.key'), 'utf8'),
    caPem: readFileSync(join(dataDir, 'pki/ca.crt'), 'utf8'),
  };
  await ctl.stop();

  // ---- 4. peers ----
  progress('peers: plain Node HTTP/2 + HTTPS with the controller\'s certificate');
  const peerLog = openSync(join(LOGS, 'peer.log'), 'w');
  const peerProc = spawnNode(['--expose-gc', join(here, 'peer-server.js')], N * 2 + 512, ['ignore', peerLog, peerLog, 'ipc']);
  closeSync(peerLog);
  const peer = new Rpc(peerProc, 'peer');
  const { httpsPort, h2Port, tlsPort } = await peer.call<{ httpsPort: number; h2Port: number; tlsPort: number }>('start', { ...ctlPem, replyBytes: ENROLL_REPLY_BYTES });
  type PeerMem = { proc: ProcMem; heapUsed: number; external: number; heldStreams: number; heldTls: number };
  const peerMem = (gc: boolean) => peer.call<PeerMem>('mem', { gc });
  const pBase = (await settledMem(peerMem)).gc;
  const holds = await fleet.all<Concurrent>('h2Hold', { address: `127.0.0.1:${h2Port}`, caPem: ctlPem.caPem }, 180_000);
  const pIdle = (await settledMem(peerMem)).gc;
  const held = pIdle.heldStreams;
  const peerPerSession = ((pIdle.proc.vmRssKiB - pBase.proc.vmRssKiB) * 1024) / Math.max(1, held);
  await fleet.all('h2Release', {}, 60_000);
  const ratioMem = perSessionGc / peerPerSession;
  row(`Peer: plain Node HTTP/2 server, ${held} idle mTLS connections with one open stream each`, `${kib(peerPerSession)} RSS per connection → Ferry's ${kib(perSessionGc)} is ${ratioMem.toFixed(1)}×`);
  if (Object.keys(merge(holds).errors).length) notes.push(`peer HTTP/2 errors: ${JSON.stringify(merge(holds).errors)}`);

  const tBase = (await settledMem(peerMem)).gc;
  const tlsHolds = await fleet.all<Concurrent>('tlsHold', { address: `127.0.0.1:${tlsPort}`, caPem: ctlPem.caPem }, 180_000);
  const tIdle = (await settledMem(peerMem)).gc;
  const heldTls = tIdle.heldTls;
  const tlsPerConn = ((tIdle.proc.vmRssKiB - tBase.proc.vmRssKiB) * 1024) / Math.max(1, heldTls);
  await fleet.all('tlsRelease', {}, 60_000);
  row(`Peer: plain Node TLS server, ${heldTls} idle mTLS connections (no HTTP/2; one byte each way, then idle)`, `${kib(tlsPerConn)} RSS per connection`);
  if (Object.keys(merge(tlsHolds).errors).length) notes.push(`peer TLS-hold errors: ${JSON.stringify(merge(tlsHolds).errors)}`);

  await sleep(1_000);
  const tPeer = performance.now();
  const peerTls = await fleet.all<Concurrent>('peerTls', { address: `127.0.0.1:${httpsPort}`, caPem: ctlPem.caPem, bodyBytes: ENROLL_BODY_BYTES }, 300_000);
  const peerTlsWall = performance.now() - tPeer;
  const peerTlsMerged = merge(peerTls);
  const peerTlsOk = peerTlsMerged.latencies.length;
  row(`Peer: ${N} concurrent bare TLS handshakes + HTTPS POSTs (plain Node, same cert, 2 handshakes each like a join)`,
    `${(peerTlsWall / 1000).toFixed(2)} s (${(peerTlsOk / (peerTlsWall / 1000)).toFixed(0)}/s, ${peerTlsOk}/${N} ok) → Ferry's enrollment takes ${(enrollWallMs / peerTlsWall).toFixed(1)}×`);
  row(`Peer: agent-side key generation + CSR for ${N} (no network)`, `${(keygenWall / 1000).toFixed(2)} s (${(keygenWall / enrollWallMs * 100).toFixed(0)}% of the enrollment wall time)`);
  if (Object.keys(peerTlsMerged.errors).length) notes.push(`peer TLS errors: ${JSON.stringify(peerTlsMerged.errors)}`);

  const spawnRes = await fleet.all<Concurrent>('spawnEcho', {}, 120_000);
  const spawnStats = stats(merge(spawnRes).latencies);
  row(`Peer: ${N} concurrent spawn('echo hi') in the agent processes, spawn → first line`, `${pct(spawnStats)} → Ferry's p50 is ${(fan.p50 / spawnStats.p50).toFixed(1)}×`);
  raw['peers'] = { h2: { base: pBase, idle: pIdle, perSessionBytes: peerPerSession, holds }, tlsIdle: { base: tBase, idle: tIdle, perConnBytes: tlsPerConn }, tls: { wallMs: peerTlsWall, ...peerTlsMerged, latency: stats(peerTlsMerged.latencies) }, spawn: spawnStats, keygen };
  await peer.call('exit', {}, 5_000).catch(() => undefined);
  await stopChild(peerProc, 5_000);
  await fleet.stop((c) => stopChild(c, 5_000));

  // ---- write ----
  meta['loadAfter'] = loadavg().map((l) => l.toFixed(2)).join(' ');
  notes.push(
    'Goals are for this 2-core machine; the controller, the agent processes and the peers share both cores, and other work on the machine shows in the load averages above.',
    `Simulated agents are the real agent code (join, SessionLoop, exec runner), ${Math.ceil(N / PROCS)} per process with one libuv thread pool per process; host facts are collected once and reused with a distinct hostname per agent.`,
    `Per-session memory = (controller VmRSS with the sessions − VmRSS of the freshly restarted controller) / sessions, each taken after ${SETTLE_MS / 1000} s of quiet and forced GCs repeated until RSS holds still; the controller is restarted after enrollment so that enrollment garbage is not counted. The same procedure measures the HTTP/2 peer.`,
    'Fan-out latency is measured in the operator process: from the ExecRequest being sent to the first `line` event of each host; every host spawns a real `echo` process.',
  );
  const md = markdown(meta, profile, cpuProfile);
  writeFileSync(join(OUT, 'foundation.md'), md);
  writeFileSync(join(OUT, 'foundation.json'), JSON.stringify({ meta, goals: { enrollSeconds: GOAL_ENROLL_S, sessionKiB: GOAL_SESSION_KIB }, rows, notes, raw }, null, 2) + '\n');
  process.stdout.write(md + '\n');
  progress(`wrote ${join(OUT, 'foundation.md')} and foundation.json; logs in ${LOGS}`);
  // A missed goal is a result, not an error: the table says so.
  return 0;
}

const deadline = setTimeout(() => {
  progress(`the whole run exceeded ${TIMEOUT_MIN} min; giving up`);
  void cleanup().then(() => process.exit(3));
}, TIMEOUT_MIN * 60_000);
deadline.unref();

main().then(
  async (code) => {
    await cleanup();
    process.exit(code);
  },
  async (err: unknown) => {
    progress(`failed: ${(err as Error)?.stack ?? String(err)}`);
    if (existsSync(LOGS)) progress(`logs of this run are in ${LOGS}`);
    await cleanup();
    process.exit(1);
  },
);
