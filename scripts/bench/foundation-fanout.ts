/**
 * Phase 3 of the foundation run: `exec echo hi` to all sessions through the
 * admin API (what `ferry exec` uses), `--rounds` times, plus one round
 * through the real CLI; per-host latency is from sending the request to
 * that host's first output line, broken down with the agents' own
 * timestamps. Apart from the other phases: the rounds and their timing are
 * this phase's alone.
 */
import { createInterface } from 'node:readline';
import type { Admin } from '../../controller/src/cli/admin-client.js';
import type { ExecEvent } from '../../common/src/gen/ferry/v1/admin.js';
import type { FleetProcs } from './fleet-procs.js';
import type { FoundationOptions } from './foundation-options.js';
import { progress, type ControllerProc, type FoundationProcs } from './foundation-procs.js';
import { mib, ms, pct, raw, row } from './foundation-report.js';
import { FERRY, waitExit } from './kit.js';
import { sleep, stats, withTimeout, type Stats } from './lib.js';

/** One fan-out round, as the operator saw it. */
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
async function execRoundCli(p: FoundationProcs, dataDir: string, ctl: ControllerProc): Promise<Round> {
  const cpu0 = ctl.cpuMs();
  const first = new Map<string, number>();
  let summaryMs = Number.NaN;
  let summary: Round['summary'];
  const t0 = performance.now();
  const proc = p.spawnNode([FERRY, '--data', dataDir, 'exec', '--all', '--json', '--', 'echo', 'hi'], 256, ['ignore', 'pipe', 'pipe', 'ipc']);
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
    await p.stopChild(proc, 2_000);
    throw new Error('ferry exec CLI did not finish within 120 s');
  }
  if (!summary) throw new Error(`ferry exec CLI ended without a summary (exit ${proc.exitCode}): ${stderr}`);
  return { via: 'cli', firstLineMs: [...first.values()], summaryMs, summary, controllerCpuMs: ctl.cpuMs() - cpu0 };
}

/** Runs phase 3 (see module comment); returns the admin-API rounds' first-line latencies, which the spawn peer is compared with. */
export async function fanOut(o: FoundationOptions, p: FoundationProcs, admin: Admin, ctl: ControllerProc, fleet: FleetProcs, stillConnected: number, dataDir: string): Promise<Stats> {
  const { rounds: ROUNDS } = o;
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
  rounds.push(await execRoundCli(p, dataDir, ctl));
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
  return fan;
}
