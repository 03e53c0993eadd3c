import type { Db } from '../store/db.js';
import type { HeldJob, JobLog, JobMessage } from './held-job.js';

interface Row {
  host_job_id: string;
  job_id: string;
  agent_id: string;
  hostname: string;
  state: string;
  next_seq: number;
  message: string;
}

const COLUMNS = 'host_job_id, job_id, agent_id, hostname, state, next_seq, message';

function held(r: Row): HeldJob {
  return { jobId: r.host_job_id, agentId: r.agent_id, hostname: r.hostname, runId: r.job_id, nextSeq: Number(r.next_seq), state: r.state, message: r.message };
}

/**
 * Jobs (exec and plan) in the store: each host's state and next expected
 * sequence number in job_hosts, every message in job_events, both written
 * in one transaction, so a restarted controller keeps deduplicating and any
 * replica can read them.
 */
export class StoreJobLog implements JobLog {
  constructor(private readonly db: Db) {}

  async create(job: HeldJob): Promise<void> {
    await this.db.run(`INSERT INTO job_hosts (host_job_id, job_id, agent_id, hostname, state, next_seq, step_index, step_count, step_id, message, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, 0, 0, '', '', ?)`, [job.jobId, job.runId, job.agentId, job.hostname, job.state, job.nextSeq, Date.now()]);
  }

  async load(jobId: string): Promise<HeldJob | undefined> {
    const r = await this.db.get<Row>(`SELECT ${COLUMNS} FROM job_hosts WHERE host_job_id = ?`, [jobId]);
    return r && held(r);
  }

  async unfinished(agentId: string): Promise<HeldJob[]> {
    const rows = await this.db.all<Row>(
      `SELECT ${COLUMNS} FROM job_hosts WHERE agent_id = ? AND state NOT IN ('succeeded', 'failed', 'cancelled', 'lost', 'offline')`, [agentId]);
    return rows.map(held);
  }

  async append(job: HeldJob, seq: number, m: JobMessage, state: string): Promise<void> {
    const kind = m.output ? 'output' : m.step ? 'step' : 'result';
    const body = m.output ?? m.step ?? m.result;
    await this.db.tx(async (db) => {
      await db.run('INSERT INTO job_events (host_job_id, seq, kind, body, at) VALUES (?, ?, ?, ?, ?)', [job.jobId, seq, kind, JSON.stringify(body), Date.now()]);
      if (m.step) {
        await db.run('UPDATE job_hosts SET next_seq = ?, state = ?, step_index = ?, step_count = ?, step_id = ?, message = ?, updated_at = ? WHERE host_job_id = ?',
          [seq + 1, state, m.step.stepIndex, m.step.stepCount, m.step.stepId, m.step.message, Date.now(), job.jobId]);
      } else if (m.result) {
        await db.run('UPDATE job_hosts SET next_seq = ?, state = ?, message = ?, updated_at = ? WHERE host_job_id = ?',
          [seq + 1, state, m.result.message, Date.now(), job.jobId]);
      } else {
        await db.run('UPDATE job_hosts SET next_seq = ?, state = ?, updated_at = ? WHERE host_job_id = ?', [seq + 1, state, Date.now(), job.jobId]);
      }
    });
  }

  async messagesAfter(jobId: string, seq: number): Promise<Array<{ seq: number; m: JobMessage }>> {
    const rows = await this.db.all<{ seq: number; kind: string; body: string }>(
      'SELECT seq, kind, body FROM job_events WHERE host_job_id = ? AND seq > ? ORDER BY seq', [jobId, seq]);
    return rows.map((r) => ({ seq: Number(r.seq), m: { [r.kind]: JSON.parse(r.body) } as JobMessage }));
  }

  async progress(jobIds: readonly string[]): Promise<Map<string, { nextSeq: number; state: string }>> {
    if (jobIds.length === 0) return new Map();
    const rows = await this.db.all<{ host_job_id: string; next_seq: number; state: string }>(
      `SELECT host_job_id, next_seq, state FROM job_hosts WHERE host_job_id IN (${jobIds.map(() => '?').join(', ')})`, [...jobIds]);
    return new Map(rows.map((r) => [r.host_job_id, { nextSeq: Number(r.next_seq), state: r.state }]));
  }

  async requestCancel(jobId: string, reason: string): Promise<void> {
    await this.db.run('UPDATE job_hosts SET cancel_reason = ? WHERE host_job_id = ? AND cancel_reason IS NULL', [reason, jobId]);
  }

  async end(job: HeldJob, state: string, message: string): Promise<void> {
    await this.db.run('UPDATE job_hosts SET state = ?, message = ?, updated_at = ? WHERE host_job_id = ?', [state, message, Date.now(), job.jobId]);
  }
}
