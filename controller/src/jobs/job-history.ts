import type { JobHostInfo, JobInfo, JobLogLine } from '../../../common/src/gen/ferry/v1/admin.js';
import type { JobOutput, JobResult, StepEvent } from '../../../common/src/gen/ferry/v1/session.js';
import { OutputStream } from '../../../common/src/gen/ferry/v1/session.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Db, SqlValue } from '../store/db.js';

/** Most log lines one `jobs logs` answer carries. */
const MAX_LOG_LINES = 50_000;
/** A run with a host in any other state is still going (`offline`: a host never reached). */
const TERMINAL = ['succeeded', 'failed', 'cancelled', 'lost', 'offline'];

interface JobRow { id: string; kind: string; plan_id: string; argv: string; check_mode: number; created_at: number; created_by: string }

/**
 * Every exec and plan run, kept for `ferry jobs ls | show | logs` until the
 * retention passes. Both kinds are written as they run: job_hosts and
 * job_events are their crash-safe log (store-job-log.ts), so any replica
 * shows a run whatever replica started it or holds its hosts' sessions.
 */
export class JobHistory {
  constructor(private readonly db: Db) {}

  /**
   * Records an exec run before any host starts; `dispatch` (the command, as
   * in JobCoordinator's JobDispatch) lets any replica make a host's start.
   */
  async createExec(jobId: string, argv: string[], createdBy: string, at: number, dispatch: unknown): Promise<void> {
    await this.db.run(`INSERT INTO jobs (id, plan_id, params, check_mode, created_at, created_by, kind, argv, dispatch) VALUES (?, '', '{}', 0, ?, ?, 'exec', ?, ?)`,
      [jobId, at, createdBy, JSON.stringify(argv), JSON.stringify(dispatch)]);
  }

  /** Records a host of a run that was not reached (no session on any replica): it never had a job. */
  async recordOffline(h: { jobId: string; hostJobId: string; agentId: string; hostname: string; message: string; at: number }): Promise<void> {
    await this.db.run(`INSERT INTO job_hosts (host_job_id, job_id, agent_id, hostname, state, next_seq, step_index, step_count, step_id, message, updated_at)
      VALUES (?, ?, ?, ?, 'offline', 0, 0, 0, '', ?, ?)`, [h.hostJobId, h.jobId, h.agentId, h.hostname, h.message, h.at]);
  }

  /** Newest first; `kind` narrows to exec or plan runs, `agentId` to jobs that ran on that agent. */
  async list(limit: number, kind?: string, agentId?: string): Promise<JobInfo[]> {
    const where: string[] = [];
    const args: SqlValue[] = [];
    if (kind) { where.push('kind = ?'); args.push(kind); }
    if (agentId) { where.push('id IN (SELECT job_id FROM job_hosts WHERE agent_id = ?)'); args.push(agentId); }
    const rows = await this.db.all<JobRow>(
      `SELECT id, kind, plan_id, argv, check_mode, created_at, created_by FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`,
      [...args, limit]);
    return Promise.all(rows.map((r) => this.info(r)));
  }

  async show(jobId: string): Promise<{ info: JobInfo; hosts: JobHostInfo[] }> {
    const r = await this.db.get<JobRow>('SELECT id, kind, plan_id, argv, check_mode, created_at, created_by FROM jobs WHERE id = ?', [jobId]);
    if (!r) throw new FerryError(ErrorCode.NotFound, `no job ${jobId} (it may be older than the job retention)`, 'list jobs with `ferry jobs ls`');
    const hosts = await this.db.all<{ host_job_id: string; agent_id: string; hostname: string; state: string; message: string; step_id: string; updated_at: number }>(
      'SELECT host_job_id, agent_id, hostname, state, message, step_id, updated_at FROM job_hosts WHERE job_id = ? ORDER BY hostname, agent_id', [jobId]);
    return {
      info: await this.info(r),
      hosts: hosts.map((h) => ({ hostJobId: h.host_job_id, agentId: h.agent_id, hostname: h.hostname, state: h.state, message: h.message, stepId: h.step_id, updatedAtMs: Number(h.updated_at) })),
    };
  }

  /** A job's log lines, per host in sequence order; `host` narrows to one host (hostname or agent id). */
  async logs(jobId: string, host: string): Promise<JobLogLine[]> {
    const { hosts } = await this.show(jobId);
    const chosen = host ? hosts.filter((h) => h.hostname === host || h.agentId === host) : hosts;
    if (host && chosen.length === 0) throw new FerryError(ErrorCode.NotFound, `job ${jobId} did not run on ${host}`, `see its hosts with \`ferry jobs show ${jobId}\``);
    const out: JobLogLine[] = [];
    for (const h of chosen) {
      const events = await this.db.all<{ seq: number; kind: string; body: string; at: number }>(
        'SELECT seq, kind, body, at FROM job_events WHERE host_job_id = ? ORDER BY seq LIMIT ?', [h.hostJobId, MAX_LOG_LINES - out.length]);
      for (const e of events) out.push({ hostname: h.hostname, agentId: h.agentId, atMs: Number(e.at), ...jobEventText(e.kind, e.body) });
      if (out.length >= MAX_LOG_LINES) break;
    }
    return out;
  }

  /**
   * Deletes jobs created before `before` whose hosts have all finished (a
   * job still running is kept whatever its age), with their hosts and
   * events. Returns how many jobs went.
   */
  async sweep(before: number): Promise<number> {
    return this.db.tx(async (db) => {
      const old = await db.all<{ id: string }>(
        `SELECT id FROM jobs j WHERE created_at < ? AND NOT EXISTS (
           SELECT 1 FROM job_hosts h WHERE h.job_id = j.id AND h.state NOT IN (${TERMINAL.map(() => '?').join(', ')}))`, [before, ...TERMINAL]);
      for (const { id } of old) {
        await db.run('DELETE FROM job_events WHERE host_job_id IN (SELECT host_job_id FROM job_hosts WHERE job_id = ?)', [id]);
        await db.run('DELETE FROM job_hosts WHERE job_id = ?', [id]);
        await db.run('DELETE FROM jobs WHERE id = ?', [id]);
      }
      return old.length;
    });
  }

  private async info(r: JobRow): Promise<JobInfo> {
    const counts = await this.db.all<{ state: string; n: number }>('SELECT state, COUNT(*) AS n FROM job_hosts WHERE job_id = ? GROUP BY state', [r.id]);
    let what = r.kind === 'exec' ? (JSON.parse(r.argv || '[]') as string[]).join(' ') : r.plan_id;
    if (r.kind !== 'exec') {
      const plan = await this.db.get<{ name: string }>('SELECT name FROM plans WHERE id = ?', [r.plan_id]);
      what = plan?.name ?? r.plan_id;
    }
    return {
      id: r.id, kind: r.kind, what, check: Boolean(r.check_mode), createdAtMs: Number(r.created_at), createdBy: r.created_by,
      counts: counts.map((c) => ({ state: c.state, count: Number(c.n) })),
    };
  }
}

/** One stored job event (output line, step event, result) as a line of text for people. */
export function jobEventText(kind: string, body: string): Pick<JobLogLine, 'kind' | 'text' | 'stderr'> {
  if (kind === 'output') {
    const o = JSON.parse(body) as JobOutput;
    return { kind, text: o.line, stderr: o.stream === OutputStream.OUTPUT_STREAM_STDERR };
  }
  if (kind === 'step') {
    const st = JSON.parse(body) as StepEvent;
    const where = `[${st.stepIndex + 1}/${st.stepCount}] ${st.stepId}`;
    return { kind, stderr: false, text: st.finished ? `${where}: ${st.status}${st.message ? ` — ${st.message}` : ''}` : `${where}: started${st.resumed ? ' (resumed after a restart)' : ''}` };
  }
  const r = JSON.parse(body) as JobResult;
  const exit = r.exit ? ` (exit ${r.exit.exitCode}${r.exit.signal ? `, ${r.exit.signal}` : ''}${r.exit.timedOut ? ', timed out' : ''})` : '';
  return { kind, stderr: false, text: `result: ${r.status}${exit}${r.failedStep ? ` at step ${r.failedStep}` : ''}${r.message ? ` — ${r.message}` : ''}` };
}
