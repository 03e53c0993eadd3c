/**
 * Steps benchmark suite (`node build/scripts/bench/run.js --suite steps [--quick]`;
 * not a test: it asserts nothing and writes a table to bench-results/steps.md + .json):
 *
 * 1. Per-step overhead: a plan of 50 no-op steps (`exec` of `true`, and
 *    `assert` of `true`) run with `ferry run` semantics (admin RunPlan) on
 *    one real agent (`ferry-agent run`), wall time / 50, and the marginal
 *    cost per step from a 1-step plan; beside spawning `true` 50 times
 *    directly from node (child_process.spawn, and execa, which the agent
 *    uses) in the same run.
 * 2. image.import vs ctr by hand: the same image tars imported by an
 *    `image.import` step (through a plan run on the agent) and by
 *    `for t in *.tar; do ctr images import $t; done`, against one private
 *    containerd (own --root/--state/socket under the temp dir, CRI off),
 *    the namespace emptied (images removed, content collected) before every
 *    run; big tars (the distribution package's six images) and six small
 *    ones (fixed costs).
 *
 * Options: --quick (2 rounds; the "big" tars are the quick package's ≈10 MiB
 * images), --rounds R (default 5), --out DIR, --keep, --timeout-min M. Every process (controller, agent,
 * containerd) and temp dir is removed at the end, also on failure or Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { JobEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { ferry, Janitor, progress, REPO, runBounded, runSuite } from './kit.js';
import { AgentProc, ControllerProc, enrollAgents, waitConnected } from './ferry-procs.js';
import { fmtMiB, fmtMs, Report } from './report.js';
import { sleep, stats, withTimeout } from './lib.js';
import { imageTar, packageSpec } from './pkg.js';

const SUITE = 'steps';
const log = (m: string) => progress(SUITE, m);
const NS = 'ferry-bench';

interface PlanRun {
  wallMs: number;
  status: string;
  agentJobMs: number;
  steps: Array<{ id: string; status: string; durationMs: number; timeMs: number }>;
  message: string;
}

function runPlan(admin: Admin, plan: string, timeoutMs: number): Promise<PlanRun> {
  const out: PlanRun = { wallMs: 0, status: '', agentJobMs: Number.NaN, steps: [], message: '' };
  const t0 = performance.now();
  const s = admin.client.runPlan({ plan, params: {}, selector: '', hosts: [], all: true, check: false, concurrency: 0, timeoutMs: 0 });
  return withTimeout(new Promise<PlanRun>((res, rej) => {
    s.on('data', (ev: JobEvent) => {
      const e = ev.event;
      if (e?.$case === 'step' && e.value.finished) out.steps.push({ id: e.value.stepId, status: e.value.status, durationMs: e.value.durationMs, timeMs: e.value.timeMs });
      if (e?.$case === 'result') { out.status = e.value.status; out.agentJobMs = e.value.durationMs; out.message = e.value.message; }
      if (e?.$case === 'offline') { out.status = 'offline'; out.message = e.value; }
    });
    s.on('error', rej);
    s.on('end', () => { out.wallMs = performance.now() - t0; res(out); });
  }), timeoutMs, `plan ${plan}`).catch((e: unknown) => { s.cancel(); throw e; });
}

function spawnTrue(): Promise<void> {
  return new Promise((res, rej) => {
    const c = spawn('true', [], { stdio: 'ignore' });
    c.once('error', rej);
    c.once('exit', (code) => (code === 0 ? res() : rej(new Error(`true exited ${code}`))));
  });
}

/** What the agent's job journal does per record: open, append a line, fsyncSync, close (ms each, median of n). */
function journalAppendMs(dir: string, n: number): number {
  const file = join(dir, 'journal-micro.jsonl');
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const fd = openSync(file, 'a', 0o600);
    try {
      appendFileSync(fd, JSON.stringify({ t: 'start', i, attempt: 1, at: Date.now() }) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    times.push(performance.now() - t0);
  }
  rmSync(file, { force: true });
  return stats(times).p50;
}

async function timeSeq(n: number, fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return performance.now() - t0;
}

// ---- a private containerd -------------------------------------------------------------

class Containerd {
  private constructor(private readonly j: Janitor, readonly proc: ReturnType<Janitor['spawn']>, readonly socket: string) {}

  static async start(j: Janitor, dir: string, logPath: string): Promise<Containerd> {
    mkdirSync(dir, { recursive: true });
    const socket = join(dir, 'containerd.sock');
    writeFileSync(join(dir, 'config.toml'), `# ferry bench: a private containerd, nothing system-wide
version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'opt')}"
`);
    const fd = openSync(logPath, 'w');
    const proc = j.spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const c = new Containerd(j, proc, socket);
    j.onCleanup(() => c.stop());
    const until = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`containerd exited with ${proc.exitCode}; see ${logPath}`);
      if (existsSync(socket) && (await c.ctr(['version'], 10_000)).code === 0) return c;
      if (Date.now() > until) throw new Error(`containerd did not answer on ${socket} within 30 s; see ${logPath}`);
      await sleep(200);
    }
  }

  ctr(args: string[], timeoutMs = 600_000) {
    return runBounded(this.j, 'ctr', ['--address', this.socket, ...args], timeoutMs);
  }

  async images(): Promise<string[]> {
    const r = await this.ctr(['-n', NS, 'images', 'ls', '-q']);
    return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  /** Removes every image of the namespace and waits until its content and snapshots are collected. */
  async clean(): Promise<void> {
    const refs = await this.images();
    if (refs.length) {
      const r = await this.ctr(['-n', NS, 'images', 'rm', '--sync', ...refs]);
      if (r.code !== 0) throw new Error(`ctr images rm: ${r.stderr}`);
    }
    const until = Date.now() + 30_000;
    for (;;) {
      const content = (await this.ctr(['-n', NS, 'content', 'ls', '-q'])).stdout.trim();
      const snaps = (await this.ctr(['-n', NS, 'snapshots', 'ls'])).stdout.trim().split('\n').slice(1).filter(Boolean);
      if (!content && snaps.length === 0) return;
      if (Date.now() > until) throw new Error(`namespace ${NS} still holds content/snapshots 30 s after removing its images`);
      await sleep(250);
    }
  }

  async stop(): Promise<void> {
    await this.j.stop(this.proc, 15_000);
  }
}

// ---- the suite --------------------------------------------------------------------------

export async function main(argv: string[]): Promise<number> {
  const { values: opt } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      out: { type: 'string', default: join(REPO, 'bench-results') },
      keep: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'timeout-min': { type: 'string' },
    },
    strict: true,
  });
  const quick = Boolean(opt.quick);
  const rounds = Number(opt.rounds ?? (quick ? 2 : 5));
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    process.stderr.write('--rounds: 1..20\n');
    return 2;
  }
  const OUT = resolve(opt.out!);
  const LOGS = join(OUT, 'steps-logs');
  rmSync(LOGS, { recursive: true, force: true });
  mkdirSync(LOGS, { recursive: true });
  const j = new Janitor(SUITE, Boolean(opt.keep));
  return runSuite(j, Number(opt['timeout-min'] ?? (quick ? 10 : 45)), () => suite(j, { quick, rounds, OUT, LOGS }));
}

function noopPlan(name: string, n: number, kind: 'exec' | 'assert'): string {
  const steps = Array.from({ length: n }, (_, i) => kind === 'exec'
    ? `  - id: s${String(i + 1).padStart(2, '0')}\n    type: exec\n    args:\n      argv: ["true"]\n`
    : `  - id: s${String(i + 1).padStart(2, '0')}\n    type: assert\n    args:\n      command: ["true"]\n`);
  return `name: ${name}\ndescription: ${n} no-op ${kind} steps (ferry bench)\nsteps:\n${steps.join('')}`;
}

async function suite(j: Janitor, o: { quick: boolean; rounds: number; OUT: string; LOGS: string }): Promise<number> {
  const { quick, rounds, OUT, LOGS } = o;
  const tmp = j.tempDir('ferry-bench-steps-');
  const rep = new Report(SUITE, `Ferry steps benchmark — ${quick ? 'quick run' : 'full run'}`, { mode: quick ? '--quick' : 'full', rounds, tmp });
  const raw = rep.raw;

  // ---- controller, key, one agent ----
  const dataDir = join(tmp, 'controller');
  const ctl = await ControllerProc.start(j, dataDir, '127.0.0.1:0', join(LOGS, 'controller.log'));
  const admin = Admin.connect({ data: dataDir });
  j.onCleanup(() => admin.close());
  const key = generateSigningKey();
  writeFileSync(join(tmp, 'op.key'), key.privatePem, { mode: 0o600 });
  writeFileSync(join(tmp, 'op.pub'), key.publicPem);
  await ferry(j, dataDir, ['key', 'add', join(tmp, 'op.pub'), '--name', 'bench', '--json']);
  const { joinString } = await admin.call(admin.client.createToken, { ttlMs: 3_600_000, maxUses: 1, labels: [{ key: 'bench', value: 'steps' }] });
  const [enrolled] = await enrollAgents(j, joinString, [join(tmp, 'agent')]);
  const agent = AgentProc.start(j, enrolled!, join(LOGS, 'agent.log'));
  await waitConnected(admin, [enrolled!.agentId], 60_000);
  log(`controller pid ${ctl.pid}, agent pid ${agent.pid} connected`);

  // ---- 1. per-step overhead ----
  const N = 50;
  const plans: Record<string, string> = {
    'bench-exec-50': noopPlan('bench-exec-50', N, 'exec'),
    'bench-exec-1': noopPlan('bench-exec-1', 1, 'exec'),
    'bench-assert-50': noopPlan('bench-assert-50', N, 'assert'),
  };
  for (const [name, text] of Object.entries(plans)) {
    writeFileSync(join(tmp, `${name}.yaml`), text);
    await ferry(j, dataDir, ['plan', 'push', join(tmp, `${name}.yaml`), '--key', join(tmp, 'op.key'), '--json']);
  }
  // Warm up both sides (module loading, first job store writes).
  await runPlan(admin, 'bench-exec-1', 60_000);
  await runPlan(admin, 'bench-exec-50', 120_000);
  const results: Record<string, PlanRun[]> = { 'bench-exec-50': [], 'bench-exec-1': [], 'bench-assert-50': [] };
  const spawnMs: number[] = [];
  const execaMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const name of Object.keys(results)) {
      const pr = await runPlan(admin, name, 300_000);
      if (pr.status !== 'succeeded') throw new Error(`plan ${name} ${pr.status}: ${pr.message}`);
      results[name]!.push(pr);
    }
    spawnMs.push(await timeSeq(N, spawnTrue));
    execaMs.push(await timeSeq(N, () => execa('true', [], { stdin: 'ignore' })));
    log(`round ${r + 1}/${rounds}: exec-50 ${fmtMs(results['bench-exec-50']!.at(-1)!.wallMs)}, spawn×50 ${fmtMs(spawnMs.at(-1)!)}`);
  }
  raw['plans'] = results;
  raw['spawnTrue50Ms'] = spawnMs;
  raw['execaTrue50Ms'] = execaMs;
  const med = (xs: number[]) => stats(xs).p50;
  const w50 = med(results['bench-exec-50']!.map((p) => p.wallMs));
  const w1 = med(results['bench-exec-1']!.map((p) => p.wallMs));
  const a50 = med(results['bench-assert-50']!.map((p) => p.wallMs));
  const sp = med(spawnMs);
  const ex = med(execaMs);
  const inStep = med(results['bench-exec-50']!.map((p) => p.steps.reduce((s, x) => s + x.durationMs, 0)));
  const agentJob = med(results['bench-exec-50']!.map((p) => p.agentJobMs));
  rep.row({
    metric: `Per-step overhead: plan of ${N} \`exec\` steps of \`true\` on one agent, wall time / ${N} (median of ${rounds})`, goal: 'no number given; beside spawn',
    measured: `${fmtMs(w50 / N)} per step (${fmtMs(w50)} for the plan)`, ratio: `${(w50 / sp).toFixed(1)}× spawn`, value: w50 / N, unit: 'ms',
  });
  rep.row({ metric: `… node spawn('true') ${N}× in a row, per spawn / execa('true') ${N}× (what the agent uses)`, measured: `${fmtMs(sp / N)} / ${fmtMs(ex / N)}` });
  rep.row({
    metric: `… marginal cost per step: (${N}-step plan − 1-step plan) / ${N - 1}; fixed cost of a plan run (1-step plan)`,
    measured: `${fmtMs((w50 - w1) / (N - 1))} per step; ${fmtMs(w1)} per run`, ratio: `${((w50 - w1) / (N - 1) / (sp / N)).toFixed(1)}× spawn`,
  });
  rep.row({
    metric: `… where it goes (${N}-step plan): inside the steps (agent's durationMs sum) / agent job total / operator wall`,
    measured: `${fmtMs(inStep)} / ${fmtMs(agentJob)} / ${fmtMs(w50)} → ${fmtMs((agentJob - inStep) / N)} per step between steps on the agent, ${fmtMs(w50 - agentJob)} outside the agent's job`,
  });
  const fsyncMs = journalAppendMs(tmp, 100);
  raw['journalAppendFsyncMs'] = fsyncMs;
  rep.row({
    metric: '… for scale: one synchronous journal append + fsyncSync on this disk (the agent does 4 per step on its main thread: journal start/done, step event start/finish)',
    measured: `${fmtMs(fsyncMs)} each → ${fmtMs(4 * fsyncMs)} per step`,
  });
  rep.row({ metric: `Per-step overhead: plan of ${N} \`assert\` steps of \`true\`, wall time / ${N}`, measured: `${fmtMs(a50 / N)} per step (${fmtMs(a50)})`, ratio: `${(a50 / sp).toFixed(1)}× spawn` });

  // ---- 2. image.import vs ctr ----
  const ctd = await Containerd.start(j, join(tmp, 'containerd'), join(LOGS, 'containerd.log'));
  log(`containerd pid ${ctd.proc.pid} on ${ctd.socket}`);
  await ctd.clean();
  const spec = packageSpec(quick ? 'quick' : 'full');
  const sets = [
    { label: 'big', layers: spec.layerBytes, count: spec.images },
    { label: 'small', layers: [256 * 1024, 256 * 1024, 512 * 1024], count: 6 },
  ];
  const imports: Record<string, unknown> = {};
  for (const set of sets) {
    const dir = join(tmp, `images-${set.label}`);
    mkdirSync(dir, { recursive: true });
    for (let i = 1; i <= set.count; i++) {
      writeFileSync(join(dir, `img-${i}.tar`), imageTar(`bench.local/ferry/${set.label}-${i}:1.0`, set.layers, [0, 1, 2].map((l) => `${set.label}-${i}-${l}`)));
    }
    let bytes = 0;
    for (let i = 1; i <= set.count; i++) bytes += readFileSync(join(dir, `img-${i}.tar`)).length; // also warms the page cache
    const planName = `bench-import-${set.label}`;
    writeFileSync(join(tmp, `${planName}.yaml`), `name: ${planName}
description: import ${set.count} image tars (ferry bench)
steps:
  - id: import
    type: image.import
    timeout: 30m
    args:
      files: ["${dir}/*.tar"]
      namespace: ${NS}
      address: ${ctd.socket}
`);
    await ferry(j, dataDir, ['plan', 'push', join(tmp, `${planName}.yaml`), '--key', join(tmp, 'op.key'), '--json']);
    const handScript = `for t in '${dir}'/*.tar; do ctr --address '${ctd.socket}' -n ${NS} images import "$t" >/dev/null || exit 1; done`;
    const hand: number[] = [];
    const step: number[] = [];
    const stepRuns: PlanRun[] = [];
    const importRounds = set.label === 'big' ? Math.min(rounds, quick ? 1 : 2) : rounds;
    for (let r = 0; r < importRounds; r++) {
      await ctd.clean();
      const h = await runBounded(j, 'sh', ['-c', handScript], 1_800_000);
      if (h.code !== 0) throw new Error(`ctr by hand failed: ${h.stderr}`);
      const nHand = (await ctd.images()).length;
      hand.push(h.ms);
      await ctd.clean();
      const pr = await runPlan(admin, planName, 1_800_000);
      if (pr.status !== 'succeeded') throw new Error(`image.import plan ${pr.status}: ${pr.message}`);
      const nStep = (await ctd.images()).length;
      if (nHand !== set.count || nStep !== set.count) throw new Error(`expected ${set.count} images, ctr by hand left ${nHand}, the step ${nStep}`);
      step.push(pr.wallMs);
      stepRuns.push(pr);
      log(`${set.label} tars round ${r + 1}/${importRounds}: ctr by hand ${fmtMs(h.ms)}, image.import ${fmtMs(pr.wallMs)} (in-step ${fmtMs(pr.steps[0]?.durationMs ?? Number.NaN)})`);
    }
    await ctd.clean();
    imports[set.label] = { count: set.count, bytes, handMs: hand, stepWallMs: step, stepRuns };
    const mh = med(hand);
    const ms = med(step);
    const inside = med(stepRuns.map((p) => p.steps[0]?.durationMs ?? Number.NaN));
    rep.row({
      metric: `image.import of ${set.count} ${set.label} image tars (${fmtMiB(bytes)}) through a plan run vs \`ctr images import\` in a shell loop (median of ${importRounds})`,
      goal: 'no number given; beside ctr', measured: `step ${fmtMs(ms)} (inside the step ${fmtMs(inside)}) · ctr by hand ${fmtMs(mh)}`,
      ratio: `${(ms / mh).toFixed(2)}× ctr`, value: ms, unit: 'ms',
    });
    rep.row({ metric: `… ${set.label}: extra time over ctr by hand, per tar (plan run wall − loop wall) / ${set.count}`, measured: fmtMs((ms - mh) / set.count) });
  }
  raw['imageImport'] = imports;
  await ctd.stop();
  await agent.stop();
  await ctl.stop();

  rep.notes.push(
    'The agent is the real `ferry-agent run` process connected over mTLS to the real controller on 127.0.0.1; plan runs are started through the admin API (what `ferry run` uses) and timed from the request to the end of the stream (summary).',
    '"Inside the steps" sums the agents\' per-step durationMs; "between steps" is the rest of the agent\'s job duration (job store writes, output and step events through the outbox, guards, expansion).',
    `image.import runs with verify on (default): it inspects every tar (reads it whole, checks blob digests) before ctr runs, lists images, imports, lists again. containerd is private to this run (CRI plugin off), namespace ${NS} emptied (images removed with --sync, content and snapshots collected) before every import; the tars are in the page cache for both sides.`,
  );
  const md = rep.write(OUT);
  process.stdout.write(md + '\n');
  log(`wrote ${join(OUT, 'steps.md')} and steps.json; logs in ${LOGS}`);
  return 0;
}
