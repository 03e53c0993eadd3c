import { Gauge, type Registry } from 'prom-client';
import type { Db } from '../store/db.js';

/** What the fleet gauges read: the store, and how many agents have a session now. */
export interface FleetSource {
  db: Pick<Db, 'all'>;
  sessions: { readonly size: number };
  /** Agents with a session on any live replica (the store's presence); without it, this controller's sessions. */
  online?: () => Promise<number>;
  /** Whether this replica holds the scheduler lease now. */
  leader?: () => boolean;
}

/** States always exported (at 0 when empty), so dashboards and alerts see a series from the first scrape. */
const AGENT_STATES = ['online', 'offline', 'revoked'] as const;
const ROLLOUT_STATES = ['prefetching', 'running', 'waiting', 'awaiting-approval', 'aborting', 'succeeded', 'failed', 'aborted'];
const HOST_JOB_STATES = ['dispatched', 'running', 'succeeded', 'failed', 'cancelled', 'lost'];

/**
 * Gauges of the fleet's state, computed from the store when Prometheus
 * scrapes (a few GROUP BY queries on indexed columns), never kept in
 * memory: they are right after a controller restart and say the same as
 * `ferry agents ls`, `ferry jobs ls` and `ferry rollout ls`.
 *
 * - ferry_agents{state}: online (has a session), offline, revoked.
 * - ferry_sessions: agent sessions open on this controller (replica).
 * - ferry_scheduler_leader: 1 on the replica holding the scheduler lease.
 *   Every series also carries the replica's id (prom-metrics.ts), so a
 *   sum of ferry_sessions over replicas is the fleet's sessions.
 * - ferry_host_jobs{kind,state}: host jobs in the job history (kept for
 *   --job-retention); exec jobs are recorded when each host finishes.
 * - ferry_rollouts{state}: rollouts by state (paused ones are in their
 *   state and also in ferry_rollouts_paused).
 */
export function registerFleetGauges(registry: Registry, src: FleetSource): void {
  const registers = [registry];
  new Gauge({
    name: 'ferry_agents', help: 'Enrolled agents by state: online (session open), offline, revoked.', labelNames: ['state'], registers,
    async collect() {
      const [row] = await src.db.all<{ total: number; revoked: number | null }>(
        'SELECT COUNT(*) AS total, SUM(CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END) AS revoked FROM agents');
      const total = Number(row?.total ?? 0);
      const revoked = Number(row?.revoked ?? 0);
      // A revoked agent's session is closed on revocation, so sessions are live agents.
      const online = Math.min(src.online ? await src.online() : src.sessions.size, total - revoked);
      const counts: Record<(typeof AGENT_STATES)[number], number> = { online, offline: total - revoked - online, revoked };
      for (const s of AGENT_STATES) this.set({ state: s }, counts[s]);
    },
  });
  new Gauge({
    name: 'ferry_sessions', help: 'Agent sessions open on this controller (replica).', registers,
    collect() { this.set(src.sessions.size); },
  });
  if (src.leader) {
    const leader = src.leader;
    new Gauge({
      name: 'ferry_scheduler_leader', help: '1 when this replica holds the scheduler lease (rollouts, prefetch, history sweep), else 0.', registers,
      collect() { this.set(leader() ? 1 : 0); },
    });
  }
  new Gauge({
    name: 'ferry_host_jobs', help: 'Host jobs in the job history by kind (exec, plan) and state.', labelNames: ['kind', 'state'], registers,
    async collect() {
      const rows = await src.db.all<{ kind: string; state: string; n: number }>(
        'SELECT j.kind AS kind, h.state AS state, COUNT(*) AS n FROM job_hosts h JOIN jobs j ON j.id = h.job_id GROUP BY j.kind, h.state');
      this.reset();
      for (const kind of ['exec', 'plan']) for (const state of HOST_JOB_STATES) this.set({ kind, state }, 0);
      for (const r of rows) this.set({ kind: r.kind, state: r.state }, Number(r.n));
    },
  });
  new Gauge({
    name: 'ferry_rollouts', help: 'Rollouts by state.', labelNames: ['state'], registers,
    async collect() {
      const rows = await src.db.all<{ state: string; n: number }>('SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state');
      this.reset();
      for (const s of ROLLOUT_STATES) this.set({ state: s }, 0);
      for (const r of rows) this.set({ state: r.state }, Number(r.n));
    },
  });
  new Gauge({
    name: 'ferry_rollouts_paused', help: 'Rollouts not finished whose paused flag is set.', registers,
    async collect() {
      const rows = await src.db.all<{ n: number }>(
        `SELECT COUNT(*) AS n FROM rollouts WHERE paused = 1 AND state NOT IN ('succeeded', 'failed', 'aborted')`);
      this.set(Number(rows[0]?.n ?? 0));
    },
  });
}
