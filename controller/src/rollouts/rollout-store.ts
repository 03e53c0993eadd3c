import type { Db } from '../store/db.js';
import { systemClock, type Clock } from './clock.js';
import type { HostModel, HostState, RolloutModel, RolloutState } from './model.js';
import type { RolloutSpec } from './spec.js';

/** A rollout as stored: its scheduling model plus what it was created from. */
export interface StoredRollout {
  model: RolloutModel;
  name: string;
  spec: RolloutSpec;
  specText: string;
  planId: string;
  planName: string;
  /** The job row every host attempt belongs to (`j-<rollout id>`). */
  jobId: string;
  bundles: Array<{ as: string; bundleId: string }>;
  createdAt: number;
  createdBy: string;
  updatedAt: number;
  finishedAt: number | null;
}

/** One timestamped rollout event (state changes, waves, operator actions). */
export interface RolloutEventRecord {
  rolloutId: string;
  seq: number;
  at: number;
  kind: string;
  agentId: string;
  hostname: string;
  state: string;
  message: string;
}

interface RolloutRow {
  id: string; name: string; plan_id: string; plan_name: string; job_id: string; spec: string; spec_text: string; bundles: string;
  wave_sizes: string; state: string; paused: number; pause_reason: string; current_wave: number; gate_until: number | null;
  created_at: number; created_by: string; updated_at: number; finished_at: number | null;
}

interface HostRow {
  agent_id: string; hostname: string; wave: number; ord: number; state: string; attempt: number; host_job_id: string | null;
  eligible_at: number | null; message: string; started_at: number | null; finished_at: number | null;
}

const num = (v: number | bigint | null): number | null => (v === null ? null : Number(v));

function hostFromRow(r: HostRow): HostModel {
  return {
    agentId: r.agent_id, hostname: r.hostname, wave: Number(r.wave), order: Number(r.ord), state: r.state as HostState,
    attempt: Number(r.attempt), hostJobId: r.host_job_id, eligibleAt: num(r.eligible_at), message: r.message,
    startedAt: num(r.started_at), finishedAt: num(r.finished_at),
  };
}

/**
 * Rollouts in the store: one row per rollout, per wave and per target host,
 * and an append-only event log. Every scheduling state change is written
 * here before it takes effect on a host, so a restarted controller resumes
 * from exactly these rows. Portable SQL only.
 */
export class RolloutStore {
  constructor(private readonly db: Db, private readonly clock: Clock = systemClock) {}

  async insert(r: StoredRollout): Promise<void> {
    const m = r.model;
    await this.db.tx(async (db) => {
      await db.run(`INSERT INTO rollouts (id, name, plan_id, plan_name, job_id, spec, spec_text, bundles, wave_sizes, state, paused, pause_reason,
        current_wave, gate_until, created_at, created_by, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [m.id, r.name, r.planId, r.planName, r.jobId, JSON.stringify(r.spec), r.specText, JSON.stringify(r.bundles), JSON.stringify(m.waveSizes),
        m.state, m.paused ? 1 : 0, m.pauseReason, m.currentWave, m.gateUntil, r.createdAt, r.createdBy, r.updatedAt, r.finishedAt]);
      for (let i = 0; i < m.waveSizes.length; i++) {
        await db.run('INSERT INTO rollout_waves (rollout_id, idx, size, started_at, finished_at) VALUES (?, ?, ?, NULL, NULL)', [m.id, i, m.waveSizes[i]!]);
      }
      for (const h of m.hosts) {
        await db.run(`INSERT INTO rollout_hosts (rollout_id, agent_id, hostname, wave, ord, state, attempt, host_job_id, eligible_at, message, started_at, finished_at, updated_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [m.id, h.agentId, h.hostname, h.wave, h.order, h.state, h.attempt, h.hostJobId, h.eligibleAt, h.message, h.startedAt, h.finishedAt, r.createdAt]);
      }
    });
  }

  /** Saves the rollout row, and with it (same transaction) the events that record the change. */
  async saveRollout(m: RolloutModel, finishedAt: number | null = null, at = this.clock.now(), events: readonly RolloutEventRecord[] = []): Promise<void> {
    await this.write(events, async (db) => {
      await db.run('UPDATE rollouts SET state = ?, paused = ?, pause_reason = ?, current_wave = ?, gate_until = ?, updated_at = ?, finished_at = ? WHERE id = ?',
        [m.state, m.paused ? 1 : 0, m.pauseReason, m.currentWave, m.gateUntil, at, finishedAt, m.id]);
    });
  }

  /** Saves host rows, and with them (same transaction) the events that record the change. */
  async saveHosts(rolloutId: string, hosts: readonly HostModel[], events: readonly RolloutEventRecord[] = []): Promise<void> {
    if (hosts.length === 0 && events.length === 0) return;
    await this.write(events, async (db) => {
      for (const h of hosts) {
        await db.run(`UPDATE rollout_hosts SET state = ?, attempt = ?, host_job_id = ?, eligible_at = ?, message = ?, started_at = ?, finished_at = ?, updated_at = ?
          WHERE rollout_id = ? AND agent_id = ?`,
        [h.state, h.attempt, h.hostJobId, h.eligibleAt, h.message, h.startedAt, h.finishedAt, this.clock.now(), rolloutId, h.agentId]);
      }
    });
  }

  /** When wave `idx` began. */
  async waveStarted(rolloutId: string, idx: number, at: number): Promise<void> {
    await this.db.run('UPDATE rollout_waves SET started_at = ? WHERE rollout_id = ? AND idx = ?', [at, rolloutId, idx]);
  }

  /**
   * When the hosts of wave `idx` were done (or stopped by an abort). The
   * first time counts: a wait or an approval gate after it is not the
   * wave's running time, so beginning the next wave does not move it.
   */
  async waveFinished(rolloutId: string, idx: number, at: number): Promise<void> {
    await this.db.run('UPDATE rollout_waves SET finished_at = ? WHERE rollout_id = ? AND idx = ? AND finished_at IS NULL', [at, rolloutId, idx]);
  }

  async waves(rolloutId: string): Promise<Array<{ idx: number; size: number; startedAt: number | null; finishedAt: number | null }>> {
    const rows = await this.db.all<{ idx: number; size: number; started_at: number | null; finished_at: number | null }>(
      'SELECT idx, size, started_at, finished_at FROM rollout_waves WHERE rollout_id = ? ORDER BY idx', [rolloutId]);
    return rows.map((r) => ({ idx: Number(r.idx), size: Number(r.size), startedAt: num(r.started_at), finishedAt: num(r.finished_at) }));
  }

  async appendEvent(e: RolloutEventRecord): Promise<void> {
    await this.insertEvent(this.db, e);
  }

  /**
   * A state change and its events commit together: a scheduler killed
   * between the two would leave a host `running` with no `running` event,
   * and the replica taking over could not tell (seen under kill -9).
   */
  private async write(events: readonly RolloutEventRecord[], fn: (db: Db) => Promise<void>): Promise<void> {
    await this.db.tx(async (db) => {
      await fn(db);
      for (const e of events) await this.insertEvent(db, e);
    });
  }

  private async insertEvent(db: Db, e: RolloutEventRecord): Promise<void> {
    await db.run('INSERT INTO rollout_events (rollout_id, seq, at, kind, agent_id, hostname, state, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      [e.rolloutId, e.seq, e.at, e.kind, e.agentId, e.hostname, e.state, e.message]);
  }

  async lastSeq(rolloutId: string): Promise<number> {
    const r = await this.db.get<{ s: number | null }>('SELECT MAX(seq) AS s FROM rollout_events WHERE rollout_id = ?', [rolloutId]);
    return Number(r?.s ?? 0);
  }

  async events(rolloutId: string, afterSeq = 0, limit = 10_000): Promise<RolloutEventRecord[]> {
    const rows = await this.db.all<{ seq: number; at: number; kind: string; agent_id: string; hostname: string; state: string; message: string }>(
      'SELECT seq, at, kind, agent_id, hostname, state, message FROM rollout_events WHERE rollout_id = ? AND seq > ? ORDER BY seq LIMIT ?', [rolloutId, afterSeq, limit]);
    return rows.map((r) => ({ rolloutId, seq: Number(r.seq), at: Number(r.at), kind: r.kind, agentId: r.agent_id, hostname: r.hostname, state: r.state, message: r.message }));
  }

  async load(id: string): Promise<StoredRollout | undefined> {
    const r = await this.db.get<RolloutRow>('SELECT * FROM rollouts WHERE id = ?', [id]);
    if (!r) return undefined;
    const hosts = (await this.db.all<HostRow>('SELECT * FROM rollout_hosts WHERE rollout_id = ? ORDER BY ord', [id])).map(hostFromRow);
    const spec = JSON.parse(r.spec) as RolloutSpec;
    return {
      model: {
        id: r.id, state: r.state as RolloutState, paused: Number(r.paused) === 1, pauseReason: r.pause_reason, currentWave: Number(r.current_wave),
        gateUntil: num(r.gate_until), waveSizes: JSON.parse(r.wave_sizes) as number[], strategy: spec.strategy, hosts,
      },
      name: r.name, spec, specText: r.spec_text, planId: r.plan_id, planName: r.plan_name, jobId: r.job_id,
      bundles: JSON.parse(r.bundles) as StoredRollout['bundles'], createdAt: Number(r.created_at), createdBy: r.created_by,
      updatedAt: Number(r.updated_at), finishedAt: num(r.finished_at),
    };
  }

  /** Ids of rollouts the scheduler must keep driving after a restart. */
  async unfinishedIds(): Promise<string[]> {
    const rows = await this.db.all<{ id: string }>(`SELECT id FROM rollouts WHERE state NOT IN ('succeeded', 'failed', 'aborted') ORDER BY created_at`);
    return rows.map((r) => r.id);
  }

  async ids(limit: number): Promise<string[]> {
    const rows = await this.db.all<{ id: string }>('SELECT id FROM rollouts ORDER BY created_at DESC LIMIT ?', [limit]);
    return rows.map((r) => r.id);
  }

  /** Step progress of host jobs (from job_hosts), for "running step k/n". */
  async hostJobs(rolloutId: string): Promise<Map<string, { state: string; stepIndex: number; stepCount: number; stepId: string; message: string }>> {
    const rows = await this.db.all<{ host_job_id: string; state: string; step_index: number; step_count: number; step_id: string; message: string }>(
      `SELECT j.host_job_id, j.state, j.step_index, j.step_count, j.step_id, j.message FROM job_hosts j
       JOIN rollout_hosts h ON h.host_job_id = j.host_job_id WHERE h.rollout_id = ?`, [rolloutId]);
    return new Map(rows.map((r) => [r.host_job_id, { state: r.state, stepIndex: Number(r.step_index), stepCount: Number(r.step_count), stepId: r.step_id, message: r.message }]));
  }

  /** The last `n` output lines of a host job, oldest first. */
  async lastLines(hostJobId: string, n: number): Promise<string[]> {
    const rows = await this.db.all<{ body: string }>(`SELECT body FROM job_events WHERE host_job_id = ? AND kind = 'output' ORDER BY seq DESC LIMIT ?`, [hostJobId, n]);
    return rows.reverse().map((r) => (JSON.parse(r.body) as { line: string }).line);
  }

  /** Every recorded event (output, steps, result) of a host job, in order. */
  async jobEvents(hostJobId: string): Promise<Array<{ seq: number; kind: string; body: string; at: number }>> {
    const rows = await this.db.all<{ seq: number; kind: string; body: string; at: number }>(
      'SELECT seq, kind, body, at FROM job_events WHERE host_job_id = ? ORDER BY seq', [hostJobId]);
    return rows.map((r) => ({ seq: Number(r.seq), kind: r.kind, body: r.body, at: Number(r.at) }));
  }
}
