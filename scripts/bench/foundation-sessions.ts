/**
 * Phase 2 of the foundation run: the controller is restarted on the same
 * port (a clean process, so enrollment garbage is not counted), the fleet's
 * session loops connect, and after a settle the controller's RSS is
 * compared with its settled baseline; per session = delta / N. Also the
 * optional look at where that memory goes (heap snapshots without and with
 * the sessions, and a churn check), which needs the same sessions.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { summarizeCpuProfile, type CpuSummary } from './cpuprof.js';
import type { FleetProcs } from './fleet-procs.js';
import type { Enrollment } from './foundation-enroll.js';
import { GOAL_SESSION_KIB, LONG_SETTLE_MS, SETTLE_MS, type FoundationOptions } from './foundation-options.js';
import { ControllerProc, progress, type FoundationProcs } from './foundation-procs.js';
import { connectedCount, settledMem, waitConnected } from './foundation-readings.js';
import { kib, mib, ms, notes, pct, raw, row, rows } from './foundation-report.js';
import { heapGrowth, summarizeSnapshot, type HeapGrowth } from './heap.js';
import { sleep, stats } from './lib.js';

/** What the idle sessions leave for the later phases. */
export interface IdleSessions {
  /** The restarted controller the sessions are connected to, and an admin client of it. */
  ctl: ControllerProc;
  admin: Admin;
  stillConnected: number;
  perSessionGc: number;
  cpuProfile: (CpuSummary & { enrollments: number }) | undefined;
}

/** Runs phase 2 (see module comment); stops enrollment's controller first. */
export async function idleSessions(o: FoundationOptions, p: FoundationProcs, dataDir: string, e: Enrollment): Promise<IdleSessions> {
  const { agents: N } = o;
  const { fleet, address, enrolled, enrollBase, enrollMemGc, joinFromUs, joinToUs, cpuProfDir } = e;
  let { ctl, admin } = e;
  progress('restarting the controller on the same port for a clean session baseline');
  admin.close();
  await ctl.stop();
  let cpuProfile: (CpuSummary & { enrollments: number }) | undefined;
  if (o.profile) {
    const file = existsSync(cpuProfDir) ? readdirSync(cpuProfDir).find((f) => f.endsWith('.cpuprofile')) : undefined;
    if (file) {
      cpuProfile = { ...summarizeCpuProfile(join(cpuProfDir, file), 15, { fromUs: joinFromUs, toUs: joinToUs }), enrollments: enrolled };
      if (!cpuProfile.windowed) notes.push('the CPU profile could not be cut to the enrollment window; it covers the controller\'s whole life, start-up included');
      raw['enrollCpuProfile'] = cpuProfile;
    } else {
      notes.push('the enrollment controller wrote no CPU profile');
    }
  }
  ctl = await ControllerProc.start(p, o, dataDir, address, 'controller-sessions.log');
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
  return { ctl, admin, stillConnected, perSessionGc, cpuProfile };
}

/**
 * With --profile, or when the memory goal is missed: heap snapshots of the
 * controller without and with the sessions, and what closing them all a
 * second time leaves behind. Undefined when not asked for.
 */
export async function sessionHeapProfile(o: FoundationOptions, p: FoundationProcs, fleet: FleetProcs, s: IdleSessions, enrolled: number): Promise<{ growth: HeapGrowth[]; n: number } | undefined> {
  const { ctl, admin, perSessionGc } = s;
  const { tmp } = p;
  let profile: { growth: HeapGrowth[]; n: number } | undefined;
  if (o.profile || perSessionGc >= GOAL_SESSION_KIB * 1024) {
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
  return profile;
}
