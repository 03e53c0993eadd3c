/**
 * Phase 1 of the foundation run: N simulated agents (the real agent code,
 * in `--procs` child processes) join one controller at once, after a
 * measurement of their key generation and CSRs alone; the rate is N / wall
 * time of all joins. Leaves the controller, the fleet and what the later
 * phases compare against to the caller. One phase a file: each has its own
 * figures and rows, and run.ts only puts them in order.
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { FleetProcs } from './fleet-procs.js';
import type { FoundationOptions } from './foundation-options.js';
import { ControllerProc, progress, type ControllerMem, type FoundationProcs } from './foundation-procs.js';
import { merge, type Concurrent } from './foundation-readings.js';
import { kib, ms, notes, pct, raw, row, rows } from './foundation-report.js';
import { sleep, stats } from './lib.js';

/** What enrollment leaves for the later phases. */
export interface Enrollment {
  ctl: ControllerProc;
  admin: Admin;
  fleet: FleetProcs;
  /** Where the controller listens; the sessions' controller is restarted on the same port. */
  address: string;
  enrolled: number;
  enrollWallMs: number;
  keygen: Concurrent[];
  keygenWall: number;
  enrollBase: ControllerMem;
  enrollMemGc: ControllerMem;
  /** The joins' window on the process clock (µs), to cut the CPU profile to. */
  joinFromUs: number;
  joinToUs: number;
  cpuProfDir: string;
}

/** Runs phase 1 (see module comment). */
export async function enroll(o: FoundationOptions, p: FoundationProcs, dataDir: string, stateRoot: string): Promise<Enrollment> {
  const { agents: N, procs: PROCS, logs: LOGS, joinTimeoutMs: JOIN_TIMEOUT_MS, goalEnrollS: GOAL_ENROLL_S } = o;
  const { tmp } = p;
  progress(`starting the controller (data ${dataDir})`);
  // With --profile, the enrollment controller samples its CPU; the profile is written when it stops.
  const cpuProfDir = join(tmp, 'cpuprof');
  const ctl = await ControllerProc.start(p, o, dataDir, '127.0.0.1:0', 'controller-enroll.log',
    o.profile ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : []);
  const port = ctl.port;
  const address = `127.0.0.1:${port}`;
  await sleep(1_000);
  const enrollBase = await ctl.mem(true);
  progress(`controller pid ${ctl.pid} on ${address}, RSS ${kib(enrollBase.proc.vmRssKiB * 1024)}`);

  progress(`starting ${PROCS} agent process(es) for ${N} agents`);
  const fleet = await FleetProcs.start(p.spawnNode, N, PROCS, stateRoot, LOGS);

  progress('agent-side key generation + CSR alone (no network)');
  const keygen = await fleet.all<Concurrent>('keygen', {}, 300_000);
  const keygenWall = Math.max(...keygen.map((k) => k.wallMs));

  const admin = Admin.connect({ data: dataDir });
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
  return { ctl, admin, fleet, address, enrolled, enrollWallMs, keygen, keygenWall, enrollBase, enrollMemGc, joinFromUs, joinToUs, cpuProfDir };
}
