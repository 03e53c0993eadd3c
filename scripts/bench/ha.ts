/**
 * HA benchmark suite (`node build/scripts/bench/run.js --suite ha [--quick]`;
 * not a test: it asserts nothing and writes bench-results/ha.md + .json).
 *
 * In one run, on one machine:
 *
 * 1. Baseline: N simulated agents (fleet.js: the real agent code — join,
 *    SessionLoop, job runner with its fsynced journal — several hundred per
 *    process) enroll with one controller on its embedded SQLite store and
 *    run a 10-step no-op rollout (rollouts.ts's plan and waves).
 * 2. HA: a fresh fleet of N enrolls through a join string listing three
 *    replicas (`ferry controller start --store postgres://… --chunks DIR`,
 *    processes of their own) on one throwaway PostgreSQL server (durable,
 *    pg_stat_statements loaded); the same rollout, created on the scheduler.
 *    Measured: enrollment rate, wall time, CPU of all replicas per host-step,
 *    PostgreSQL statements / transactions / rows / CPU per host-step, and
 *    the idle cost of N connected sessions per second.
 * 3. Failover: a rollout with waves 10% / 100% and `wait: 2s`; the moment
 *    wave 1 is done the scheduler replica is killed with SIGKILL. Measured:
 *    kill → another replica holds the lease → wave 2 started (its stored
 *    start) → the first wave-2 host reports a step started.
 * 4. What 10,000 agents would need: the measured per-agent and per-host-step
 *    costs multiplied out, stated as an extrapolation.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { RolloutSnapshot } from '../../common/src/gen/ferry/v1/rollouts.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import { BenchPostgres, pgDelta } from './ha-pg.js';
import { freePort, Janitor, memOf, MiB, progress, REPO, runSuite } from './kit.js';
import { ControllerProc } from './ferry-procs.js';
import { fmtMs, Report } from './report.js';
import { FleetProcs, type SpawnNode } from './fleet-procs.js';
import { nodeCommand, sleep } from './lib.js';
import { noopPlan, planTimes } from './rollouts.js';

const SUITE = 'ha';
const log = (m: string) => progress(SUITE, m);
const TERMINAL = ['succeeded', 'failed', 'aborted'];

interface Cfg { n: number; procs: number; steps: number; quick: boolean; OUT: string; LOGS: string }

/** One controller process with its admin client. */
interface Node { ctl: ControllerProc; admin: Admin; dir: string; address: string }

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
  const n = Number(opt.agents ?? (quick ? 60 : 1000));
  const procs = Math.max(1, Math.min(n, Number(opt.procs)));
  const steps = Number(opt.steps);
  if (!Number.isInteger(n) || n < 20 || n > 5000 || !Number.isInteger(procs) || !Number.isInteger(steps) || steps < 1 || steps > 100) {
    process.stderr.write('usage: run.js --suite ha [--quick] [--agents 20..5000] [--procs P] [--steps 1..100] [--out DIR] [--keep] [--timeout-min M]\n');
    return 2;
  }
  const OUT = resolve(opt.out!);
  const LOGS = join(OUT, `${SUITE}-logs`);
  rmSync(LOGS, { recursive: true, force: true }); // the replicas' logs are appended to and counted: this run's only
  mkdirSync(LOGS, { recursive: true });
  const j = new Janitor(SUITE, Boolean(opt.keep));
  return runSuite(j, Number(opt['timeout-min'] ?? (quick ? 10 : 40)), () => suite(j, { n, procs, steps, quick, OUT, LOGS }));
}

/** Enrolls a fresh fleet of n through `admin`'s join string; starts every session; returns the fleet and the enrollment numbers. */
async function enroll(j: Janitor, cfg: Cfg, admin: Admin, stateRoot: string, root: string, wantAddresses: number): Promise<{ fleet: FleetProcs; wallMs: number; perSec: number }> {
  const spawnNode: SpawnNode = (args, needFds, stdio) => {
    const cmd = nodeCommand(args, needFds);
    return j.spawn(cmd.file, cmd.args, { stdio });
  };
  const fleet = await FleetProcs.start(spawnNode, cfg.n, cfg.procs, stateRoot, cfg.LOGS);
  let joinString = '';
  for (const until = Date.now() + 30_000; ;) {
    ({ joinString } = await admin.call(admin.client.createToken, { ttlMs: 3_600_000, maxUses: cfg.n, labels: [{ key: 'bench', value: 'rollout' }] }));
    if (joinString.split('/')[1]!.split(',').length >= wantAddresses) break;
    if (Date.now() > until) throw new Error(`the join string lists fewer than ${wantAddresses} addresses: ${joinString}`);
    await sleep(500);
  }
  const t0 = performance.now();
  const joins = await fleet.all<{ ok: number; errors: Record<string, number> }>('join', { joinString, timeoutMs: 120_000 }, 600_000);
  const wallMs = performance.now() - t0;
  const ok = joins.reduce((s, r) => s + r.ok, 0);
  if (ok !== cfg.n) throw new Error(`only ${ok} of ${cfg.n} agents enrolled: ${JSON.stringify(joins.map((r) => r.errors))}`);
  const started = await fleet.all<{ connected: number; want: number }>('sessionsStart', { timeoutMs: 180_000, root }, 240_000);
  const connected = started.reduce((s, r) => s + r.connected, 0);
  if (connected !== cfg.n) throw new Error(`only ${connected} of ${cfg.n} sessions connected`);
  return { fleet, wallMs, perSec: cfg.n / (wallMs / 1000) };
}

async function pushPlan(admin: Admin, steps: number): Promise<void> {
  const key = generateSigningKey();
  await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'bench' });
  await admin.call(admin.client.pushPlan, { signed: signPlan(noopPlan(steps), 'bench-noop.yaml', key.privatePem) });
}

/** Creates a rollout on `admin` and polls it every `pollMs` until it ends; `onSnap` sees every snapshot. */
async function rollout(admin: () => Admin, spec: string, timeoutMs: number, pollMs = 1000, onSnap: (s: RolloutSnapshot) => Promise<void> | void = () => undefined): Promise<{ snap: RolloutSnapshot; t0: number }> {
  const ro = new Rollouts(admin());
  const t0 = Date.now();
  const { id } = await ro.call(ro.client.create, { spec, file: 'bench.yaml' });
  for (;;) {
    await sleep(pollMs);
    let s: RolloutSnapshot;
    try {
      const now = new Rollouts(admin());
      s = await now.call(now.client.get, { id, afterSeq: 0 });
    } catch {
      if (Date.now() - t0 > timeoutMs) throw new Error(`rollout ${id}: no replica answers`);
      continue; // the replica asked was just killed: `admin()` names another next time
    }
    await onSnap(s);
    if (TERMINAL.includes(s.info!.state) && !s.hosts.some((h) => h.state === 'running')) return { snap: s, t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`rollout ${id} still ${s.info!.state} after ${timeoutMs / 1000} s: ${JSON.stringify(s.info!.counts)}`);
  }
}

const SPEC = 'plan: bench-noop\ntargets: { selector: bench=rollout }\nstrategy:\n  waves: [1, "10%", "100%"]\n  errorBudget: 0\n';
const FAILOVER_SPEC = 'plan: bench-noop\ntargets: { selector: bench=rollout }\nstrategy:\n  waves: ["10%", "100%"]\n  wait: 2s\n  errorBudget: 0\n';
const counts = (s: RolloutSnapshot) => JSON.stringify(Object.fromEntries(s.info!.counts.map((c) => [c.state, c.count])));
/** Log lines of the replicas' logs so far whose message is `msg`. */
function logCount(logs: string[], msg: string): number {
  const needle = `"msg":"${msg}"`;
  return logs.reduce((s, f) => s + readFileSync(f, 'utf8').split('\n').filter((l) => l.includes(needle)).length, 0);
}
const cpuAll = (nodes: Node[]) => nodes.reduce((s, x) => s + x.ctl.cpuMs(), 0);
const rssAll = (nodes: Node[]) => nodes.reduce((s, x) => s + (memOf(x.ctl.pid).rss || 0), 0);

async function suite(j: Janitor, cfg: Cfg): Promise<number> {
  const { n, steps } = cfg;
  const hostSteps = n * steps;
  const tmp = j.tempDir('ferry-bench-ha-');
  const root = join(tmp, 'root');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'ready'), 'ok\n');
  const rep = new Report(SUITE, `Ferry HA benchmark — ${cfg.quick ? 'quick run' : 'full run'}`, { mode: cfg.quick ? '--quick' : 'full', agents: n, steps, procs: cfg.procs, replicas: 3 });

  // ---- 1. the single SQLite controller ----
  log(`baseline: one controller on SQLite, ${n} simulated agents`);
  const sdir = join(tmp, 'sqlite');
  const single = await ControllerProc.start(j, sdir, '127.0.0.1:0', join(cfg.LOGS, 'sqlite.log'));
  const sadmin = Admin.connect({ data: sdir });
  await pushPlan(sadmin, steps);
  const sEnroll = await enroll(j, cfg, sadmin, join(tmp, 'agents-sqlite'), root, 1);
  log(`baseline: ${n} enrolled in ${fmtMs(sEnroll.wallMs)}; rollout`);
  await sleep(3_000);
  const sCpu0 = single.cpuMs();
  const sRoll = await rollout(() => sadmin, SPEC, 15 * 60_000);
  const sCpu = single.cpuMs() - sCpu0;
  const sWall = Number(sRoll.snap.info!.finishedAtMs) - sRoll.t0;
  await sEnroll.fleet.stop((c) => j.stop(c));
  sadmin.close();
  await single.stop();

  // ---- 2. three replicas on PostgreSQL ----
  log('PostgreSQL: a durable throwaway server with pg_stat_statements');
  const pgs = await BenchPostgres.start(j);
  const chunks = join(tmp, 'shared-chunks');
  mkdirSync(chunks);
  const nodes: Node[] = [];
  for (let i = 0; i < 3; i++) {
    const dir = join(tmp, `replica-${i}`);
    const address = `127.0.0.1:${await freePort()}`;
    const ctl = await ControllerProc.start(j, dir, address, join(cfg.LOGS, `replica-${i}.log`), [],
      ['--store', pgs.url, '--chunks', chunks, '--http-addr', '127.0.0.1:0']);
    const admin = Admin.connect({ data: dir });
    j.onCleanup(() => admin.close());
    nodes.push({ ctl, admin, dir, address });
  }
  await pushPlan(nodes[0]!.admin, steps);
  const IDLE_MS = cfg.quick ? 5_000 : 10_000;
  /** Replicas' CPU and PostgreSQL's counters over IDLE_MS with nothing running. */
  const idleSpan = async () => {
    const p0 = await pgs.counters();
    const c0 = cpuAll(nodes);
    await sleep(IDLE_MS);
    return { pg: pgDelta(p0, await pgs.counters()), cpuMs: cpuAll(nodes) - c0 };
  };
  await sleep(3_000);
  const idleEmpty = await idleSpan(); // what three replicas cost with no agent at all
  const rssBefore = nodes.map((x) => memOf(x.ctl.pid).rss);
  log(`HA: ${n} simulated agents enroll through a join string of 3 replicas`);
  const hEnroll = await enroll(j, cfg, nodes[1]!.admin, join(tmp, 'agents-ha'), root, 3);
  await sleep(3_000);
  const spread = await pgs.sessionsPerReplica();
  const replicaLogs = nodes.map((_, i) => join(cfg.LOGS, `replica-${i}.log`));
  // The connect storm as the replicas saw it: sessions the agents gave up on (no welcome in time) and scheduler changes.
  const storm = { closed: logCount(replicaLogs, 'session closed'), connected: logCount(replicaLogs, 'agent connected'), leaseLost: logCount(replicaLogs, 'no longer the scheduler: singleton work stops') };
  const rssAfter = nodes.map((x) => memOf(x.ctl.pid).rss);

  // Idle: N sessions connected, nothing running.
  const idleFull = await idleSpan();
  const idle = idleFull.pg;
  const idleCpu = idleFull.cpuMs;

  /** The replica holding the lease; never `dead` (its lease row outlives it until it expires). */
  const leaderNode = async (dead?: Node): Promise<Node> => {
    for (const until = Date.now() + 30_000; Date.now() < until; await sleep(100)) {
      const a = await pgs.leaderAddress();
      const x = nodes.find((y) => y !== dead && y.address === a);
      if (x) return x;
    }
    throw new Error('no replica holds the scheduler lease');
  };
  const leader = await leaderNode();
  log(`HA rollout on the scheduler (${leader.address})`);
  await pgs.resetStatements();
  await planTimes(hEnroll.fleet); // forget the enrollment's
  const h0 = await pgs.counters();
  const hc0 = cpuAll(nodes);
  let rssPeak = rssAll(nodes);
  const hRoll = await rollout(() => leader.admin, SPEC, 15 * 60_000, 1000, () => { rssPeak = Math.max(rssPeak, rssAll(nodes)); });
  const hCpu = cpuAll(nodes) - hc0;
  const hPg = pgDelta(h0, await pgs.counters());
  const top = await pgs.top(8);
  const hWall = Number(hRoll.snap.info!.finishedAtMs) - hRoll.t0;
  const perReplicaCpu = nodes.map((x) => x.ctl.cpuMs());

  // ---- 3. failover ----
  log('failover: kill -9 the scheduler the moment wave 1 is done');
  await planTimes(hEnroll.fleet);
  let killedAt = 0;
  let takeoverMs = Number.NaN;
  let victim: Node | undefined;
  let current = leader;
  const fo = await rollout(() => current.admin, FAILOVER_SPEC, 10 * 60_000, 50, async (s) => {
    if (victim || !(Number(s.waves[0]?.finishedAtMs) > 0)) return;
    victim = current;
    victim.ctl.proc.kill('SIGKILL');
    killedAt = Date.now();
    current = await leaderNode(victim);
    takeoverMs = Date.now() - killedAt;
    log(`scheduler ${victim.address} killed; ${current.address} holds the lease after ${fmtMs(takeoverMs)}`);
  });
  const foTimes = await planTimes(hEnroll.fleet);
  const wave2Start = Number(fo.snap.waves[1]?.startedAtMs ?? 0);
  const wave1Done = Number(fo.snap.waves[0]?.finishedAtMs ?? 0);
  const firstWave2Step = Math.min(...fo.snap.hosts.filter((h) => h.wave === 1).map((h) => foTimes.get(h.hostJobId)?.firstStep ?? Infinity));

  // ---- report ----
  const sPer = sCpu / hostSteps;
  const hPer = hCpu / hostSteps;
  const pgPer = hPg.cpuMs / hostSteps;
  const perSec = (x: number) => x / (IDLE_MS / 1000);
  // What each connected agent adds to the replicas' and PostgreSQL's idle load (the fixed part, with no agent, subtracted).
  const idlePerAgentMs = Math.max(0, perSec(idleCpu - idleEmpty.cpuMs) / n);
  const idleXactPerAgent = Math.max(0, perSec(idle.xacts - idleEmpty.pg.xacts) / n);
  const idlePgPerAgentMs = Math.max(0, perSec(idle.cpuMs - idleEmpty.pg.cpuMs) / n);
  const rssPerSession = (rssAfter.reduce((s, x) => s + x, 0) - rssBefore.reduce((s, x) => s + x, 0)) / n;
  rep.row({ metric: `Enrollment, ${n} agents joining at once: one controller on SQLite`, measured: `${sEnroll.perSec.toFixed(0)} agents/s (${fmtMs(sEnroll.wallMs)})`, value: sEnroll.perSec, unit: 'agents/s' });
  rep.row({ metric: `Enrollment, ${n} agents joining at once: 3 replicas on PostgreSQL (join string of 3 addresses)`, measured: `${hEnroll.perSec.toFixed(0)} agents/s (${fmtMs(hEnroll.wallMs)}); sessions per replica ${[...spread.values()].join(' / ')}`, value: hEnroll.perSec, unit: 'agents/s' });
  rep.row({ metric: `… while the ${n} sessions connected at once: sessions opened / closed by the agents before the welcome (retries) / times the scheduler lost its lease`, measured: `${storm.connected} / ${storm.closed} / ${storm.leaseLost}` });
  rep.row({ metric: `Rollout of a ${steps}-step no-op plan to ${n} hosts, waves 1 / 10% / 100%, wall time: SQLite`, measured: `${fmtMs(sWall)} (${sRoll.snap.info!.state}: ${counts(sRoll.snap)})`, value: sWall, unit: 'ms' });
  rep.row({ metric: '… 3 replicas on PostgreSQL', measured: `${fmtMs(hWall)} (${hRoll.snap.info!.state}: ${counts(hRoll.snap)})`, ratio: `${(hWall / sWall).toFixed(2)}× SQLite`, value: hWall, unit: 'ms' });
  rep.row({ metric: 'Controller CPU per host-step (user + system over the rollout, the watcher\'s 1/s Get included): SQLite', measured: `${sPer.toFixed(2)} ms (${(sCpu / 1000).toFixed(1)} CPU-s)`, value: sPer, unit: 'ms' });
  rep.row({ metric: '… 3 replicas on PostgreSQL, all replicas together', measured: `${hPer.toFixed(2)} ms (${(hCpu / 1000).toFixed(1)} CPU-s)`, ratio: `${(hPer / sPer).toFixed(2)}× SQLite`, value: hPer, unit: 'ms' });
  rep.row({ metric: '… PostgreSQL server CPU per host-step (postmaster + backends)', measured: `${pgPer.toFixed(2)} ms (${(hPg.cpuMs / 1000).toFixed(1)} CPU-s)`, value: pgPer, unit: 'ms' });
  rep.row({ metric: '… PostgreSQL statements per host-step (pg_stat_statements calls) / transactions per host-step (pg_stat_database)', measured: `${(hPg.calls / hostSteps).toFixed(2)} / ${(hPg.xacts / hostSteps).toFixed(2)} (${hPg.calls} statements, ${hPg.xacts} transactions)`, value: hPg.calls / hostSteps, unit: 'statements' });
  rep.row({ metric: '… rows read / written per host-step', measured: `${(hPg.rowsRead / hostSteps).toFixed(1)} / ${(hPg.rowsWritten / hostSteps).toFixed(2)}` });
  rep.row({ metric: `Idle (${IDLE_MS / 1000} s, no jobs), 3 replicas: no agents → ${n} sessions connected: replicas' CPU; PostgreSQL transactions/s and CPU`,
    measured: `${perSec(idleEmpty.cpuMs).toFixed(0)} → ${perSec(idleCpu).toFixed(0)} ms/s; ${perSec(idleEmpty.pg.xacts).toFixed(1)} → ${perSec(idle.xacts).toFixed(1)} transactions/s; PostgreSQL ${perSec(idleEmpty.pg.cpuMs).toFixed(0)} → ${perSec(idle.cpuMs).toFixed(0)} ms/s` });
  rep.row({ metric: 'Replica RSS: 3 replicas before the fleet → with its sessions (sum); peak during the rollout', measured: `${(rssBefore.reduce((s, x) => s + x, 0) / MiB).toFixed(0)} MiB → ${(rssAfter.reduce((s, x) => s + x, 0) / MiB).toFixed(0)} MiB (${(rssPerSession / 1024).toFixed(0)} KiB per session); peak ${(rssPeak / MiB).toFixed(0)} MiB` });
  rep.row({ metric: 'Failover: scheduler killed (SIGKILL) the moment wave 1 of 2 was done → another replica holds the lease (default --lease-ttl 10s)', goal: '≤ 15 s', measured: fmtMs(takeoverMs), result: takeoverMs <= 15_000 ? 'PASS' : 'FAIL', value: takeoverMs, unit: 'ms' });
  rep.row({ metric: '… killed → wave 2 started (its stored start; the strategy waits 2 s between waves)', goal: '≤ 15 s', measured: `${fmtMs(wave2Start - killedAt)} (wave 1 done ${fmtMs(killedAt - wave1Done)} before the kill)`, result: wave2Start - killedAt <= 15_000 ? 'PASS' : 'FAIL', value: wave2Start - killedAt, unit: 'ms' });
  rep.row({ metric: '… killed → the first wave-2 host reports a step started; the rollout\'s end', measured: `${fmtMs(firstWave2Step - killedAt)}; ${fo.snap.info!.state} (${counts(fo.snap)}) ${fmtMs(Number(fo.snap.info!.finishedAtMs) - killedAt)} after the kill`, value: firstWave2Step - killedAt, unit: 'ms' });

  // ---- 4. 10,000 agents, extrapolated ----
  const N10 = 10_000;
  const steps10 = N10 * steps;
  rep.sections.push('## 10,000 agents: extrapolated from the measured per-agent costs (not measured)', '',
    `Linear in agents, from this run's ${n}-agent numbers; the machine here has 2 cores shared by the fleet, the replicas and PostgreSQL, so the costs below are CPU time, not wall time.`, '',
    `- **Enrollment:** at the measured ${hEnroll.perSec.toFixed(0)} agents/s on this machine, ${N10} agents ≈ ${(N10 / hEnroll.perSec / 60).toFixed(1)} min.`,
    `- **A ${steps}-step rollout to ${N10} hosts (${steps10} host-steps):** replicas ≈ ${(hPer * steps10 / 1000).toFixed(0)} CPU-s in total (${(hPer * steps10 / 3000).toFixed(0)} CPU-s each over 3 replicas); PostgreSQL ≈ ${(pgPer * steps10 / 1000).toFixed(0)} CPU-s and ${Math.round(hPg.calls / hostSteps * steps10)} statements (${Math.round(hPg.xacts / hostSteps * steps10)} transactions).`,
    `- **Idle sessions** (the per-agent part: idle with ${n} agents minus idle with none, divided by ${n}; the fixed part of 3 replicas is ${perSec(idleEmpty.cpuMs).toFixed(0)} CPU-ms/s and ${perSec(idleEmpty.pg.xacts).toFixed(1)} transactions/s): replicas ≈ ${(perSec(idleEmpty.cpuMs) + idlePerAgentMs * N10).toFixed(0)} CPU-ms/s together; PostgreSQL ≈ ${(perSec(idleEmpty.pg.xacts) + idleXactPerAgent * N10).toFixed(1)} transactions/s and ${(perSec(idleEmpty.pg.cpuMs) + idlePgPerAgentMs * N10).toFixed(0)} CPU-ms/s.`,
    `- **Memory:** ≈ ${(rssPerSession * N10 / MiB).toFixed(0)} MiB of replica RSS for sessions (${(rssPerSession * N10 / 3 / MiB).toFixed(0)} MiB per replica over 3).`,
    '- **Connections:** PostgreSQL connections do not grow with agents: each replica holds at most 12 (a pool of 10, and 2 for the lease and heartbeat).', '');
  rep.sections.push('## Most frequent statements during the rollout (pg_stat_statements)', '', '| Calls | Mean ms | Statement |', '|---|---|---|',
    ...top.map((t) => `| ${t.calls} | ${t.meanMs.toFixed(3)} | \`${t.query.replace(/\|/g, '\\|').replace(/`/g, "'")}\` |`), '');
  rep.notes.push(
    `Simulated agents: fleet.js, the real agent code (join with its own key and CSR, SessionLoop over mTLS gRPC, job runner with its fsynced journal), ${Math.ceil(n / cfg.procs)} per Node process in ${cfg.procs} processes, each with its own state directory and hostname; host facts are collected once and reused. They are not separate hosts: they share the 2 cores with the controllers and PostgreSQL, so wall times include their work.`,
    'No-op step: `wait.for` of a file that exists (a stat, reported `unchanged`), so the work measured is Ferry\'s own (messages, journal, store), as in the rollouts suite.',
    `PostgreSQL: ${await pgs.settings()}; one server for the three replicas on this machine (test/support/postgres.ts ownPostgres, durable). Its CPU is the postmaster's and every backend's (exited backends through the postmaster's reaped-children time).`,
    'Replicas: three `ferry controller start` processes with --store postgres://… and one shared --chunks directory, default --lease-ttl (10 s) and heartbeat; the rollout is created on the replica holding the scheduler lease; agents spread over the replicas by the hash of their id.',
    'Failover: the Get polls go to the scheduler, and after the kill to the replica that took the lease; the agents whose sessions were on the killed replica reconnect to another with their usual backoff.',
  );
  rep.raw['sqlite'] = { enroll: { wallMs: sEnroll.wallMs, perSec: sEnroll.perSec }, wallMs: sWall, cpuMs: sCpu };
  rep.raw['ha'] = { storm, enroll: { wallMs: hEnroll.wallMs, perSec: hEnroll.perSec }, spread: Object.fromEntries(spread), wallMs: hWall, cpuMs: hCpu, perReplicaCpuMs: perReplicaCpu, pg: hPg, idle: { ms: IDLE_MS, cpuMs: idleCpu, pg: idle, empty: idleEmpty }, rssBefore, rssAfter, rssPeak, top };
  rep.raw['failover'] = { killedAt, takeoverMs, wave1Done, wave2Start, firstWave2Step, state: fo.snap.info!.state };
  await hEnroll.fleet.stop((c) => j.stop(c));
  const md = rep.write(cfg.OUT);
  process.stdout.write(`${md}\n`);
  return 0;
}

