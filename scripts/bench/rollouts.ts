/**
 * Rollouts benchmark suite (`node build/scripts/bench/run.js --suite rollouts [--quick]`;
 * not a test: it asserts nothing and writes bench-results/rollouts.md + .json).
 *
 * N simulated agents (the real agent code: join, SessionLoop, job runner with
 * its fsynced journal; `--procs` child processes of fleet.js) enroll with one
 * controller (`bin/ferry.js controller start`, a process of its own). Then:
 *
 * 1. Rollout: a 10-step no-op plan (each step a `wait.for` of a file that
 *    exists, so the agent does a stat and reports `unchanged`: nothing but
 *    Ferry's own work is measured), waves 1 / 10% / 100%, no wait, no
 *    concurrency limit. Wall time from Create to the rollout's finish;
 *    controller CPU (user + system from /proc) over that span per host-step;
 *    controller RSS sampled every 100 ms (peak and before); scheduling
 *    latency per host from its wave's start ("host eligible") to the agent
 *    reporting its first step started, split into eligible → start sent
 *    (the controller's dispatch) and start sent → first step at the agent.
 * 2. Peer: the same plan through `ferry run` semantics (admin RunPlan, all
 *    hosts at once, no waves, no rollout state) on the same fleet: what the
 *    rollout machinery adds over plain plan jobs.
 *
 * The watcher polls Get every POLL_MS as an operator's watch would; one
 * Get's controller CPU is measured first and the polls' share is reported.
 * Only 127.0.0.1 is used; every process and temp dir is removed at the end.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { JobEvent } from '../../common/src/gen/ferry/v1/admin.js';
import type { RolloutSnapshot } from '../../common/src/gen/ferry/v1/rollouts.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import { Janitor, memOf, MiB, progress, REPO, runSuite } from './kit.js';
import { ControllerProc, waitConnected } from './ferry-procs.js';
import { fmtMs, Report } from './report.js';
import { sysDelta, sysSnap, type SysDelta } from './sys-counters.js';
import { FleetProcs, type SpawnNode } from './fleet-procs.js';
import { nodeCommand, sleep, stats, withTimeout, type Stats } from './lib.js';

const SUITE = 'rollouts';
const log = (m: string) => progress(SUITE, m);
const POLL_MS = 1000;
const GOAL_CPU_MS_PER_HOST_STEP = 2;
const GOAL_WALL_S_500 = 60;

export interface PlanTimes { arrived?: number; firstStep?: number; result?: number; status?: string; steps: number }

/** A 10-step (or `steps`) plan whose every step is a no-op on the agent. */
export function noopPlan(steps: number): string {
  const lines = ['name: bench-noop', 'steps:'];
  for (let i = 1; i <= steps; i++) lines.push(`  - id: noop-${i}`, '    type: wait.for', '    args: { file: /ready, timeout: 10s }');
  return `${lines.join('\n')}\n`;
}

/** Plan-job timings the fleet recorded since the last call, by host job id. */
export async function planTimes(fleet: FleetProcs): Promise<Map<string, PlanTimes>> {
  const parts = await fleet.all<Record<string, PlanTimes>>('planTimes', {}, 30_000);
  return new Map(parts.flatMap((p) => Object.entries(p)));
}

/** Controller RSS every 100 ms while `fn` runs: before and peak. */
async function sampleRss<T>(pid: number, fn: () => Promise<T>): Promise<{ result: T; beforeBytes: number; peakBytes: number }> {
  const beforeBytes = memOf(pid).rss;
  let peakBytes = beforeBytes;
  const t = setInterval(() => { peakBytes = Math.max(peakBytes, memOf(pid).rss || 0); }, 100);
  try {
    return { result: await fn(), beforeBytes, peakBytes };
  } finally {
    clearInterval(t);
  }
}

interface RolloutRun {
  wallMs: number;
  cpuMs: number;
  fleetCpuMs: number;
  sys: SysDelta;
  fleetLag: Array<{ p50: number; p99: number; max: number }>;
  polls: number;
  snap: RolloutSnapshot;
  rssBefore: number;
  rssPeak: number;
  times: Map<string, PlanTimes>;
}

async function runRollout(admin: Admin, ctl: ControllerProc, fleet: FleetProcs, timeoutMs: number): Promise<RolloutRun> {
  const ro = new Rollouts(admin);
  const spec = 'plan: bench-noop\ntargets: { selector: bench=rollout }\nstrategy:\n  waves: [1, "10%", "100%"]\n  errorBudget: 0\n';
  await fleet.all('lagStart', {}, 10_000);
  const sys0 = sysSnap();
  const fleet0 = fleet.cpuMs();
  const cpu0 = ctl.cpuMs();
  const t0 = Date.now();
  let polls = 0;
  const { result: snap, beforeBytes, peakBytes } = await sampleRss(ctl.pid, async () => {
    const { id } = await ro.call(ro.client.create, { spec, file: 'bench-rollout.yaml' });
    log(`rollout ${id} created`);
    for (;;) {
      await sleep(POLL_MS);
      polls++;
      const s = await ro.call(ro.client.get, { id, afterSeq: 0 });
      const st = s.info!.state;
      if (['succeeded', 'failed', 'aborted'].includes(st) && !s.hosts.some((h) => h.state === 'running')) return s;
      if (Date.now() - t0 > timeoutMs) throw new Error(`rollout ${id} still ${st} after ${timeoutMs / 1000} s: ${JSON.stringify(s.info!.counts)}`);
    }
  });
  const cpuMs = ctl.cpuMs() - cpu0;
  const fleetCpuMs = fleet.cpuMs() - fleet0;
  const sys = sysDelta(sys0, sysSnap());
  const fleetLag = await fleet.all<{ p50: number; p99: number; max: number }>('lagStop', {}, 10_000);
  const wallMs = Number(snap.info!.finishedAtMs) - t0;
  return { wallMs, cpuMs, fleetCpuMs, sys, fleetLag, polls, snap, rssBefore: beforeBytes, rssPeak: peakBytes, times: await planTimes(fleet) };
}

/** The same plan to every host at once through RunPlan (what `ferry run` does). */
async function runPlain(admin: Admin, ctl: ControllerProc, fleet: FleetProcs, n: number, timeoutMs: number): Promise<{ wallMs: number; cpuMs: number; ok: number; rssPeak: number }> {
  const cpu0 = ctl.cpuMs();
  const t0 = performance.now();
  let ok = 0;
  const { result, peakBytes } = await sampleRss(ctl.pid, () => withTimeout(new Promise<number>((res, rej) => {
    const s = admin.client.runPlan({ plan: 'bench-noop', params: {}, selector: 'bench=rollout', hosts: [], all: false, check: false, concurrency: 0, timeoutMs: 0 });
    s.on('data', (ev: JobEvent) => { if (ev.event?.$case === 'result' && ev.event.value.status === 'succeeded') ok++; });
    s.on('error', rej);
    s.on('end', () => res(performance.now() - t0));
  }), timeoutMs, 'ferry run of the no-op plan'));
  await planTimes(fleet); // forget these
  if (ok !== n) log(`plain run: only ${ok} of ${n} hosts succeeded`);
  return { wallMs: result, cpuMs: ctl.cpuMs() - cpu0, ok, rssPeak: peakBytes };
}

/** The controller's own account of each batch of host starts ("rollout hosts started" log lines of this rollout). */
function dispatchBatches(logPath: string, rolloutId: string): Array<{ hosts: number; dispatchMs: number }> {
  if (!existsSync(logPath)) return [];
  const out: Array<{ hosts: number; dispatchMs: number }> = [];
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.includes('rollout hosts started') || !line.includes(rolloutId)) continue;
    try {
      const o = JSON.parse(line) as { hosts: number; dispatchMs: number };
      out.push({ hosts: o.hosts, dispatchMs: o.dispatchMs });
    } catch { /* not a log record */ }
  }
  return out;
}

/** Controller CPU of one Get of this rollout (mean of `k`), to tell the watcher's share. */
async function getCostMs(admin: Admin, ctl: ControllerProc, id: string, k: number): Promise<number> {
  const ro = new Rollouts(admin);
  const c0 = ctl.cpuMs();
  for (let i = 0; i < k; i++) await ro.call(ro.client.get, { id, afterSeq: 0 });
  return (ctl.cpuMs() - c0) / k;
}

export async function main(argv: string[]): Promise<number> {
  const { values: opt } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      agents: { type: 'string' },
      procs: { type: 'string', default: '2' },
      steps: { type: 'string', default: '10' },
      out: { type: 'string', default: join(REPO, 'bench-results') },
      keep: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'timeout-min': { type: 'string' },
    },
    strict: true,
  });
  const quick = Boolean(opt.quick);
  const n = Number(opt.agents ?? (quick ? 100 : 500));
  const procs = Math.max(1, Math.min(n, Number(opt.procs)));
  const steps = Number(opt.steps);
  if (!Number.isInteger(n) || n < 2 || n > 5000 || !Number.isInteger(procs) || !Number.isInteger(steps) || steps < 1 || steps > 100) {
    process.stderr.write('usage: run.js --suite rollouts [--quick] [--agents 2..5000] [--procs P] [--steps 1..100] [--out DIR] [--keep] [--profile] [--timeout-min M]\n');
    return 2;
  }
  const OUT = resolve(opt.out!);
  const LOGS = join(OUT, `${SUITE}-logs`);
  mkdirSync(LOGS, { recursive: true });
  const j = new Janitor(SUITE, Boolean(opt.keep));
  return runSuite(j, Number(opt['timeout-min'] ?? (quick ? 10 : 30)), () => suite(j, { n, procs, steps, quick, profile: Boolean(opt.profile), OUT, LOGS }));
}

interface Cfg { n: number; procs: number; steps: number; quick: boolean; profile: boolean; OUT: string; LOGS: string }

async function suite(j: Janitor, cfg: Cfg): Promise<number> {
  const { n, steps } = cfg;
  const tmp = j.tempDir('ferry-bench-rollouts-');
  const rep = new Report(SUITE, `Ferry rollouts benchmark — ${cfg.quick ? 'quick run' : 'full run'}`, { mode: cfg.quick ? '--quick' : 'full', agents: n, steps, procs: cfg.procs });
  const dataDir = join(tmp, 'controller');
  const root = join(tmp, 'root');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'ready'), 'ok\n');

  const nodeArgs = cfg.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(cfg.LOGS, 'profile')}`] : [];
  const ctl = await ControllerProc.start(j, dataDir, '127.0.0.1:0', join(cfg.LOGS, 'controller.log'), nodeArgs);
  const admin = Admin.connect({ data: dataDir });
  j.onCleanup(() => admin.close());
  const key = generateSigningKey();
  await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'bench' });
  await admin.call(admin.client.pushPlan, { signed: signPlan(noopPlan(steps), 'bench-noop.yaml', key.privatePem) });

  log(`enrolling ${n} simulated agents in ${cfg.procs} process(es)`);
  const spawnNode: SpawnNode = (args, needFds, stdio) => {
    const cmd = nodeCommand(args, needFds);
    return j.spawn(cmd.file, cmd.args, { stdio });
  };
  const fleet = await FleetProcs.start(spawnNode, n, cfg.procs, join(tmp, 'agents'), cfg.LOGS);
  const { joinString } = await admin.call(admin.client.createToken, { ttlMs: 3_600_000, maxUses: n, labels: [{ key: 'bench', value: 'rollout' }] });
  const joins = await fleet.all<{ ok: number; errors: Record<string, number> }>('join', { joinString, timeoutMs: 120_000 }, 300_000);
  const enrolled = joins.reduce((s, r) => s + r.ok, 0);
  if (enrolled !== n) throw new Error(`only ${enrolled} of ${n} agents enrolled: ${JSON.stringify(joins.map((r) => r.errors))}`);
  await fleet.all('sessionsStart', { timeoutMs: 120_000, root }, 180_000);
  const { agents } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: false });
  await waitConnected(admin, agents.map((a) => a.id), 120_000);
  log(`${n} agents connected; settling`);
  await sleep(3_000);

  log(`rollout of a ${steps}-step no-op plan to ${n} hosts, waves 1 / 10% / 100%`);
  const r = await runRollout(admin, ctl, fleet, 20 * 60_000);
  const getMs = await getCostMs(admin, ctl, r.snap.info!.id, 5);
  log(`rollout ${r.snap.info!.state} in ${fmtMs(r.wallMs)}; plain ferry run for comparison`);
  const plain = await runPlain(admin, ctl, fleet, n, 10 * 60_000);

  // Scheduling latency: wave start (host eligible) → start sent → agent's first step.
  const waveStart = new Map(r.snap.waves.map((w) => [w.index, Number(w.startedAtMs)]));
  const toFirst: number[] = [];
  const dispatch: number[] = [];
  const toAgent: number[] = [];
  let missing = 0;
  for (const h of r.snap.hosts) {
    const t = r.times.get(h.hostJobId);
    const w0 = waveStart.get(h.wave);
    if (!t?.firstStep || !t.arrived || !w0) { missing++; continue; }
    toFirst.push(t.firstStep - w0);
    dispatch.push(t.arrived - w0);
    toAgent.push(t.firstStep - t.arrived);
  }
  const s = (xs: number[]): Stats => stats(xs);
  const lat = s(toFirst);
  const hostSteps = n * steps;
  const cpuPer = r.cpuMs / hostSteps;
  const pollCpu = r.polls * getMs;
  const counts = Object.fromEntries(r.snap.info!.counts.map((c) => [c.state, c.count]));
  const goalWallMs = GOAL_WALL_S_500 * 1000 * (n / 500);

  rep.row({ metric: `Rollout of a ${steps}-step no-op plan to ${n} hosts, waves 1 / 10% / 100% (${r.snap.waves.map((w) => w.size).join(' / ')} hosts): wall time, Create → finished`, goal: `< ${(goalWallMs / 1000).toFixed(0)} s`, measured: `${fmtMs(r.wallMs)} (${r.snap.info!.state}: ${JSON.stringify(counts)})`, ratio: `${(r.wallMs / goalWallMs).toFixed(2)}× goal`, result: r.wallMs < goalWallMs && r.snap.info!.state === 'succeeded' ? 'PASS' : 'FAIL', value: r.wallMs, unit: 'ms' });
  rep.row({ metric: 'Controller CPU per host-step (user + system over the rollout, the watcher\'s polls included)', goal: `< ${GOAL_CPU_MS_PER_HOST_STEP} ms`, measured: `${cpuPer.toFixed(2)} ms (${(r.cpuMs / 1000).toFixed(2)} CPU-s for ${hostSteps} host-steps)`, ratio: `${(cpuPer / GOAL_CPU_MS_PER_HOST_STEP).toFixed(2)}× goal`, result: cpuPer < GOAL_CPU_MS_PER_HOST_STEP ? 'PASS' : 'FAIL', value: cpuPer, unit: 'ms' });
  rep.row({ metric: `… of which the watcher's ${r.polls} Get calls (${getMs.toFixed(1)} ms CPU each, measured after)`, measured: `${(pollCpu / 1000).toFixed(2)} CPU-s (${((pollCpu / r.cpuMs) * 100).toFixed(1)}%)` });
  rep.row({ metric: 'Controller RSS during the rollout: before → peak', measured: `${(r.rssBefore / MiB).toFixed(1)} MiB → ${(r.rssPeak / MiB).toFixed(1)} MiB` });
  rep.row({ metric: 'Scheduling latency, host eligible (its wave started) → agent reports step 1 started: p50 / p99 / max', measured: `${fmtMs(lat.p50)} / ${fmtMs(lat.p99)} / ${fmtMs(lat.max)} (${toFirst.length} hosts${missing ? `, ${missing} without timings` : ''})`, value: lat.p99, unit: 'ms' });
  rep.row({ metric: '… eligible → the job start arrives at the agent (controller dispatch + the wire; p50 / p99)', measured: `${fmtMs(s(dispatch).p50)} / ${fmtMs(s(dispatch).p99)}` });
  rep.row({ metric: '… job start at the agent → step 1 started (agent: journal, plan check; p50 / p99)', measured: `${fmtMs(s(toAgent).p50)} / ${fmtMs(s(toAgent).p99)}` });
  const batches = dispatchBatches(join(cfg.LOGS, 'controller.log'), r.snap.info!.id);
  const biggest = batches.reduce((m, b) => (b.hosts > m.hosts ? b : m), { hosts: 0, dispatchMs: 0 });
  rep.row({ metric: '… the controller\'s dispatch (its log: start decided → the last JobStart handed to a session), per batch of starts; the largest batch', measured: `${batches.length} batches; ${biggest.hosts} hosts in ${fmtMs(biggest.dispatchMs)}` });
  rep.row({ metric: 'Where the wall time went: machine CPU busy; controller vs simulated-fleet CPU; the fleet processes\' event-loop delay (p99 / max: how long a message waited to be read there)', measured: `${r.sys.busyPct.toFixed(0)}% busy; controller ${(r.cpuMs / 1000).toFixed(1)} CPU-s, fleet ${(r.fleetCpuMs / 1000).toFixed(1)} CPU-s (${cfg.procs} processes); loop delay ${r.fleetLag.map((l) => `${fmtMs(l.p99)} / ${fmtMs(l.max)}`).join(', ')}` });
  for (const w of r.snap.waves) {
    rep.row({ metric: `… wave ${w.index + 1} (planned ${w.planned}: ${w.size} hosts): started → done`, measured: fmtMs(Number(w.finishedAtMs) - Number(w.startedAtMs)) });
  }
  const plainPer = plain.cpuMs / hostSteps;
  rep.row({ metric: `Peer: the same plan to the same ${n} hosts with \`ferry run\` (RunPlan, all at once, no waves, no rollout state)`, measured: `${fmtMs(plain.wallMs)}, ${plainPer.toFixed(2)} ms controller CPU per host-step, ${plain.ok}/${n} succeeded, RSS peak ${(plain.rssPeak / MiB).toFixed(1)} MiB`, ratio: `rollout CPU ${(cpuPer / plainPer).toFixed(2)}× plain run` });
  rep.notes.push(
    'Agents are the real agent code (enrollment, session loop, job runner with its fsynced journal) in simulated hosts, several per process; they share the 2 cores with the controller, so wall time includes their work.',
    'No-op step: `wait.for` of a file that exists under the agent\'s root (a stat, reported `unchanged`), so agent-side work is Ferry\'s own (journal, messages), not a spawned program.',
    'Scheduling latency is bounded here by the simulated fleet, not the controller: hundreds of agents share one event loop per fleet process, and each job start\'s fsynced journal record blocks the others in that process; the fleet\'s event-loop delay (max) is close to the latency p99, while the controller hands a whole wave\'s starts to the sessions in the time shown in its dispatch row.',
    'Scheduling latency uses one clock (all processes on this machine): the wave\'s stored start time and the moment the agent code hands its first step event to the outbox.',
  );
  rep.raw['rollout'] = { wallMs: r.wallMs, cpuMs: r.cpuMs, fleetCpuMs: r.fleetCpuMs, sys: r.sys, fleetLag: r.fleetLag, polls: r.polls, getMs, rssBefore: r.rssBefore, rssPeak: r.rssPeak, latency: lat, dispatch: s(dispatch), toAgent: s(toAgent), waves: r.snap.waves };
  rep.raw['plain'] = plain;
  rep.raw['dispatchBatches'] = batches;
  const md = rep.write(cfg.OUT);
  process.stdout.write(`${md}\n`);
  return 0;
}
