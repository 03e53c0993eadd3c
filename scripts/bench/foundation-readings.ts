/**
 * What the foundation run's phases read off the processes: the simulated
 * fleet's per-process results merged, a process's memory once it has
 * settled, and how many sessions the controller counts. Apart from the
 * phases because several of them take the same readings the same way.
 */
import type { Admin } from '../../controller/src/cli/admin-client.js';
import { SETTLE_MS } from './foundation-options.js';
import { sleep, type ProcMem } from './lib.js';

/** One fleet process's answer to a concurrent command: wall time, per-agent latencies, errors by kind. */
export interface Concurrent { wallMs: number; latencies: number[]; errors: Record<string, number> }

/** The answers of all fleet processes as one. */
export function merge(rs: Concurrent[]): { latencies: number[]; errors: Record<string, number> } {
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
export async function settledMem<M extends { proc: ProcMem }>(mem: (gc: boolean) => Promise<M>, longMs = 0): Promise<{ noGc: M; noGcLong?: M; gc: M }> {
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

/** Sessions the controller lists as connected. */
export async function connectedCount(admin: Admin): Promise<number> {
  const { agents } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: false });
  return agents.filter((a) => a.connected).length;
}

/** Waits until the controller counts `want` connected sessions (or `timeoutMs` passes); returns the last count. */
export async function waitConnected(admin: Admin, want: number, timeoutMs: number): Promise<number> {
  const until = Date.now() + timeoutMs;
  let n = await connectedCount(admin);
  while (n !== want && Date.now() < until) {
    await sleep(250);
    n = await connectedCount(admin);
  }
  return n;
}
