import { randomBytes } from 'node:crypto';
import type { JobEvent, JobSummary } from '../../../common/src/gen/ferry/v1/admin.js';
import { OutputStream, type ExecOutput, type JobBundle, type JobResult, type JobStart, type SignedPlan, type StepEvent } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { Db } from '../store/db.js';
import type { SessionRegistry } from '../sessions/registry.js';

/** A host's part of a job, as the coordinator tracks it in memory (mirrors job_hosts). */
interface HostJob {
  hostJobId: string;
  jobId: string;
  agentId: string;
  hostname: string;
  nextSeq: number;
  start: JobStart;
  sink?: (ev: JobEvent) => void;
  done?: (r: JobResult | undefined, offline?: string) => void;
}

/** Callbacks for one host's job: every event, and the result once. */
export interface HostJobHooks {
  sink?: (ev: JobEvent) => void;
  done?: (r: JobResult | undefined) => void;
}

/** A host job as stored in job_hosts. */
export interface HostJobRow {
  host_job_id: string;
  job_id: string;
  agent_id: string;
  state: string;
  next_seq: number;
  step_index: number;
  step_count: number;
  step_id: string;
  message: string;
}

export interface RunJobRequest {
  planId: string;
  signed: SignedPlan;
  params: Record<string, string>;
  bundles: JobBundle[];
  check: boolean;
  concurrency: number;
  createdBy: string;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'lost']);

/**
 * Plan jobs across hosts, persisted: every host's state, the next sequence
 * number expected from it and every event are in the store, so a restarted
 * controller keeps deduplicating and an agent that reconnects is sent only
 * what it lacks. A start the agent never received is sent again (the agent
 * refuses to run a job id twice); a running job the agent no longer knows is
 * reported lost, never re-run blindly.
 */
export class JobCoordinator {
  private readonly live = new Map<string, HostJob>();

  constructor(private readonly db: Db, private readonly sessions: SessionRegistry, private readonly log: Logger) {}

  async run(req: RunJobRequest, targets: Array<{ agentId: string; hostname: string }>, sink: (ev: JobEvent) => void): Promise<JobSummary> {
    const jobId = `j-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    await this.db.run('INSERT INTO jobs (id, plan_id, params, check_mode, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)',
      [jobId, req.planId, JSON.stringify(req.params), req.check ? 1 : 0, Date.now(), req.createdBy]);
    const summary: JobSummary = { jobId, matched: targets.length, succeeded: 0, failed: 0, offline: 0, changedSteps: 0 };
    const queue = [...targets];
    const limit = req.concurrency > 0 ? req.concurrency : Number.POSITIVE_INFINITY;
    let running = 0;
    await new Promise<void>((resolveAll) => {
      const next = () => {
        while (running < limit && queue.length > 0) {
          const t = queue.shift()!;
          if (!this.sessions.get(t.agentId)) {
            summary.offline++;
            sink({ agentId: t.agentId, hostname: t.hostname, event: { $case: 'offline', value: 'not connected' } });
            continue;
          }
          running++;
          void this.dispatch(jobId, req, t, sink, (r) => {
            running--;
            if (r?.status === 'succeeded') summary.succeeded++;
            else summary.failed++;
            summary.changedSteps += r?.changed ?? 0;
            next();
          });
        }
        if (running === 0 && queue.length === 0) resolveAll();
      };
      next();
    });
    return summary;
  }

  private async dispatch(jobId: string, req: RunJobRequest, t: { agentId: string; hostname: string }, sink: (ev: JobEvent) => void, done: (r: JobResult | undefined) => void): Promise<void> {
    await this.startHost(jobId, `${jobId}-${t.agentId}`, req, t, { sink, done: (r) => done(r) });
  }

  /** The JobStart an agent is sent for one host's part of a job. */
  jobStart(hostJobId: string, req: Pick<RunJobRequest, 'signed' | 'params' | 'bundles' | 'check'>): JobStart {
    return { jobId: hostJobId, plan: req.signed, params: req.params, bundles: req.bundles, check: req.check };
  }

  /** Records a job (the row host jobs belong to) without starting any host; rollouts start hosts one by one. */
  async createJob(jobId: string, req: Omit<RunJobRequest, 'concurrency'>): Promise<void> {
    await this.db.run('INSERT INTO jobs (id, plan_id, params, check_mode, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)',
      [jobId, req.planId, JSON.stringify(req.params), req.check ? 1 : 0, Date.now(), req.createdBy]);
  }

  /**
   * Starts one host's part of job `jobId` as `hostJobId` (must start with
   * "j-" and be new: agents never run a job id twice). `hooks.done` is
   * called once with the result, also when the job is found lost.
   */
  async startHost(jobId: string, hostJobId: string, req: Pick<RunJobRequest, 'signed' | 'params' | 'bundles' | 'check'>,
    t: { agentId: string; hostname: string }, hooks: HostJobHooks): Promise<void> {
    const start = this.jobStart(hostJobId, req);
    await this.db.run(`INSERT INTO job_hosts (host_job_id, job_id, agent_id, hostname, state, next_seq, step_index, step_count, step_id, message, updated_at)
      VALUES (?, ?, ?, ?, 'dispatched', 1, 0, 0, '', '', ?)`, [hostJobId, jobId, t.agentId, t.hostname, Date.now()]);
    const hj: HostJob = { hostJobId, jobId, agentId: t.agentId, hostname: t.hostname, nextSeq: 1, start, sink: hooks.sink, done: (r) => hooks.done?.(r) };
    this.live.set(hostJobId, hj);
    hooks.sink?.({ agentId: t.agentId, hostname: t.hostname, event: { $case: 'started', value: hostJobId } });
    this.sessions.get(t.agentId)?.send({ msg: { $case: 'jobStart', value: start } });
  }

  /**
   * Re-attaches callbacks to a host job recorded before a controller
   * restart, so its result (arriving when the agent reconnects) reaches the
   * caller. A start still marked undelivered is sent again if the agent is
   * connected (the agent ignores a job id it already has). Returns the
   * stored row; when it is already finished, `done` is NOT called — the
   * caller reads the state from the row.
   */
  async attach(hostJobId: string, t: { agentId: string; hostname: string }, start: JobStart, hooks: HostJobHooks): Promise<HostJobRow | undefined> {
    const row = await this.hostJob(hostJobId);
    if (!row || TERMINAL.has(row.state)) return row;
    this.live.set(hostJobId, { hostJobId, jobId: row.job_id, agentId: t.agentId, hostname: t.hostname, nextSeq: Number(row.next_seq), start, sink: hooks.sink, done: (r) => hooks.done?.(r) });
    if (row.state === 'dispatched') this.sessions.get(t.agentId)?.send({ msg: { $case: 'jobStart', value: start } });
    return row;
  }

  /** One host job's stored state. */
  async hostJob(hostJobId: string): Promise<HostJobRow | undefined> {
    return this.db.get<HostJobRow>('SELECT host_job_id, job_id, agent_id, state, next_seq, step_index, step_count, step_id, message FROM job_hosts WHERE host_job_id = ?', [hostJobId]);
  }

  /** Agents with a plan job not yet finished (agent id → host job id): a host runs one plan job at a time. */
  async busyAgents(): Promise<Map<string, string>> {
    const rows = await this.db.all<{ agent_id: string; host_job_id: string }>(
      `SELECT agent_id, host_job_id FROM job_hosts WHERE state IN ('dispatched', 'running')`);
    return new Map(rows.map((r) => [r.agent_id, r.host_job_id]));
  }

  /** Acks for the agent's open plan jobs; resends starts it never got; marks lost ones. */
  async onHello(agentId: string, openJobs: string[]): Promise<Array<{ jobId: string; seq: number }>> {
    const rows = await this.db.all<{ host_job_id: string; state: string; next_seq: number }>(
      `SELECT host_job_id, state, next_seq FROM job_hosts WHERE agent_id = ? AND state NOT IN ('succeeded', 'failed', 'cancelled', 'lost')`, [agentId]);
    const acked: Array<{ jobId: string; seq: number }> = [];
    const open = new Set(openJobs);
    for (const r of rows) {
      if (open.has(r.host_job_id)) {
        acked.push({ jobId: r.host_job_id, seq: Number(r.next_seq) - 1 });
      } else if (r.state === 'dispatched') {
        const hj = this.live.get(r.host_job_id);
        if (hj) this.sessions.get(agentId)?.send({ msg: { $case: 'jobStart', value: hj.start } });
        // Recorded before a controller restart and never received: nothing
        // here can resend it (the start lived in memory), and it did not run.
        else await this.finishHost(r.host_job_id, agentId, 'lost', 'the controller restarted before this host received the job; it did not run');
      } else {
        await this.finishHost(r.host_job_id, agentId, 'lost', 'the agent no longer knows this job (its state was lost); it was not re-run');
      }
    }
    return acked;
  }

  /** Handles output, step events and results of plan jobs; returns false for job ids it does not own. */
  async onMessage(agentId: string, jobId: string, seq: number, m: { output?: ExecOutput; step?: StepEvent; result?: JobResult }): Promise<boolean> {
    if (!jobId.startsWith('j-')) return false;
    const session = this.sessions.get(agentId);
    const row = await this.db.get<{ next_seq: number; state: string }>('SELECT next_seq, state FROM job_hosts WHERE host_job_id = ? AND agent_id = ?', [jobId, agentId]);
    if (!row) { session?.ack(jobId, seq); return true; }
    const expected = Number(row.next_seq);
    if (seq < expected) { session?.ack(jobId, expected - 1); return true; }
    if (seq > expected) { this.log.warn({ agentId, jobId, seq, expected }, 'out-of-order job message dropped'); return true; }
    const hj = this.live.get(jobId);
    const kind = m.output ? 'output' : m.step ? 'step' : 'result';
    const body = m.output ?? m.step ?? m.result;
    await this.db.tx(async (db) => {
      await db.run('INSERT INTO job_events (host_job_id, seq, kind, body, at) VALUES (?, ?, ?, ?, ?)', [jobId, seq, kind, JSON.stringify(body), Date.now()]);
      if (m.step) {
        await db.run(`UPDATE job_hosts SET next_seq = ?, state = 'running', step_index = ?, step_count = ?, step_id = ?, message = ?, updated_at = ? WHERE host_job_id = ?`,
          [seq + 1, m.step.stepIndex, m.step.stepCount, m.step.stepId, m.step.message, Date.now(), jobId]);
      } else if (m.result) {
        await db.run('UPDATE job_hosts SET next_seq = ?, state = ?, message = ?, updated_at = ? WHERE host_job_id = ?',
          [seq + 1, m.result.status, m.result.message, Date.now(), jobId]);
      } else {
        await db.run(`UPDATE job_hosts SET next_seq = ?, state = CASE WHEN state = 'dispatched' THEN 'running' ELSE state END, updated_at = ? WHERE host_job_id = ?`,
          [seq + 1, Date.now(), jobId]);
      }
    });
    session?.ack(jobId, seq);
    if (hj?.sink) {
      const base = { agentId, hostname: hj.hostname };
      if (m.output) {
        hj.sink({ ...base, event: { $case: 'line', value: {
          agentId, hostname: hj.hostname, stderr: m.output.stream === OutputStream.OUTPUT_STREAM_STDERR, line: m.output.line, seq, timeMs: m.output.timeMs,
        } } });
      } else if (m.step) hj.sink({ ...base, event: { $case: 'step', value: m.step } });
      else if (m.result) hj.sink({ ...base, event: { $case: 'result', value: m.result } });
    }
    if (m.result) {
      this.live.delete(jobId);
      hj?.done?.(m.result);
    }
    return true;
  }

  private async finishHost(hostJobId: string, agentId: string, state: string, message: string): Promise<void> {
    if (!TERMINAL.has(state)) return;
    await this.db.run('UPDATE job_hosts SET state = ?, message = ?, updated_at = ? WHERE host_job_id = ?', [state, message, Date.now(), hostJobId]);
    const hj = this.live.get(hostJobId);
    this.live.delete(hostJobId);
    const result: JobResult = { jobId: hostJobId, seq: 0, status: state, failedStep: '', message, durationMs: 0, changed: 0, unchanged: 0, skipped: 0 };
    hj?.sink?.({ agentId, hostname: hj.hostname, event: { $case: 'result', value: result } });
    hj?.done?.(result);
  }

  /** Cancels a host job (operator abort). */
  cancel(hostJobId: string, agentId: string): void {
    this.sessions.get(agentId)?.send({ msg: { $case: 'execCancel', value: { jobId: hostJobId, reason: 'cancelled by the operator' } } });
  }
}
