import type { JobEvent, JobSummary } from '../../../common/src/gen/ferry/v1/admin.js';
import { JobKind, OutputStream, type ExecSpec, type JobBundle, type JobResult, type JobStart, type SignedPlan } from '../../../common/src/gen/ferry/v1/session.js';
import { systemClock, type Clock, type Timer } from '../../../common/src/clock.js';
import type { Logger } from '../../../common/src/log.js';
import type { Db } from '../store/db.js';
import type { SessionRegistry } from '../sessions/registry.js';
import { NO_METRICS, type JobMetrics } from '../metrics/metrics.js';
import { fanOut } from './fan-out.js';
import { controllerResult, newJobId, type JobListener, type JobMessage } from './held-job.js';
import { JobSequencer } from './job-sequencer.js';
import { StoreJobLog } from './store-job-log.js';

/** How long a host job may stay silent past the run's timeout before it is given up on. */
const TIMEOUT_GRACE_MS = 30_000;

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
  /** Per host: cancel a host job still running this long after it started (0 or absent: no limit). */
  timeoutMs?: number;
}

/**
 * What a job's hosts are sent, kept in its jobs row (`dispatch`) so any
 * replica can make a host's start again: a plan with its parameters, or an
 * ad-hoc command.
 */
export type JobDispatch = Pick<RunJobRequest, 'signed' | 'params' | 'bundles' | 'check'> | { exec: ExecSpec };

/**
 * Jobs on agents. Holds the one sequencer every job's messages go through
 * and runs plan jobs; exec jobs (exec/exec-coordinator.ts) start their hosts
 * through `dispatch` the same way. Every host's state, the next sequence
 * number expected from it and every event are in the store, so a restarted
 * controller keeps deduplicating, an agent that reconnects is sent only what
 * it lacks and a host whose session is on another replica is reached through
 * the mailbox. A start the agent never received is sent again (the agent
 * journals job ids of both kinds and refuses to run one twice); a running
 * job the agent no longer knows is reported lost, never re-run blindly.
 */
export class JobCoordinator {
  readonly sequencer: JobSequencer;
  private readonly jobLog: StoreJobLog;

  /** Dispatch of recent jobs by job id (immutable once written), so a wave of starts reads it once. */
  private readonly dispatchCache = new Map<string, { d: JobDispatch; createdAt: number }>();
  /** Agents with a session on another replica (the store's presence); none with one controller. */
  connectedElsewhere: () => Promise<Set<string>> = async () => new Set();

  /** `clock`: the run's per-host timeout and its grace are timers on it (tests advance a ManualClock). */
  constructor(private readonly db: Db, private readonly sessions: SessionRegistry, log: Logger, metrics: JobMetrics = NO_METRICS,
    private readonly clock: Clock = systemClock) {
    this.jobLog = new StoreJobLog(db);
    this.sequencer = new JobSequencer(sessions, log, [this.jobLog], metrics, (job) => this.rebuildStart(job));
  }

  /**
   * A host job's start made again from its jobs row (jobs created before
   * migration 14 have none: undefined). An ad-hoc command past its timeout
   * and grace is not made again either: its operator has been told it was
   * lost (or has left), and a host back after that must not run it late.
   */
  async rebuildStart(job: { jobId: string; runId: string }): Promise<JobStart | undefined> {
    let c = this.dispatchCache.get(job.runId);
    if (!c) {
      const row = await this.db.get<{ dispatch: string; created_at: number }>('SELECT dispatch, created_at FROM jobs WHERE id = ?', [job.runId]);
      if (!row?.dispatch) return undefined;
      c = { d: JSON.parse(row.dispatch) as JobDispatch, createdAt: Number(row.created_at) };
      if (this.dispatchCache.size >= 100) this.dispatchCache.clear();
      this.dispatchCache.set(job.runId, c);
    }
    if ('exec' in c.d && this.clock.now() > c.createdAt + c.d.exec.timeoutMs + TIMEOUT_GRACE_MS) return undefined;
    return this.jobStart(job.jobId, c.d);
  }

  /**
   * Runs a plan on `targets`, at most `req.concurrency` hosts at once,
   * reporting through `sink`. When `signal` aborts (the operator pressed
   * Ctrl-C) no further host is started and every running host job is
   * cancelled on its host; a host job still running `req.timeoutMs` after it
   * started is cancelled the same way.
   */
  async run(req: RunJobRequest, targets: Array<{ agentId: string; hostname: string }>, sink: (ev: JobEvent) => void,
    signal: AbortSignal = new AbortController().signal): Promise<JobSummary> {
    const jobId = newJobId();
    await this.createJob(jobId, req);
    // A host whose session is on another replica is reached through the store (the mailbox there starts it; its messages are followed from here).
    const elsewhere = await this.connectedElsewhere();
    const summary: JobSummary = { jobId, matched: targets.length, succeeded: 0, failed: 0, offline: 0, changedSteps: 0 };
    /** Host jobs under way: host job id → its agent and its timeout timer. */
    const running = new Map<string, { agentId: string; timer?: Timer }>();
    const finished = (r: JobResult | undefined) => {
      if (r?.status === 'succeeded') summary.succeeded++;
      else summary.failed++;
      summary.changedSteps += r?.changed ?? 0;
    };
    const onAbort = () => {
      for (const [hostJobId, h] of running) {
        h.timer?.cancel();
        void this.sequencer.cancel(hostJobId, h.agentId, 'cancelled by the operator');
      }
      running.clear();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      const all = fanOut(targets, req.concurrency, (t, done) => {
        if (!this.sequencer.connected(t.agentId) && !elsewhere.has(t.agentId)) {
          summary.offline++;
          sink({ agentId: t.agentId, hostname: t.hostname, event: { $case: 'offline', value: 'not connected' } });
          return false;
        }
        const hostJobId = `${jobId}-${t.agentId}`;
        const h: { agentId: string; timer?: Timer } = { agentId: t.agentId };
        running.set(hostJobId, h);
        if (req.timeoutMs) {
          h.timer = this.clock.after(req.timeoutMs, () => {
            void this.sequencer.cancel(hostJobId, t.agentId, `still running after the run's timeout (${Math.round(req.timeoutMs! / 1000)} s)`);
            // A host that cannot hear the cancel (no session) is given up on; if it
            // comes back, hello finds the job ended here and stops it there.
            h.timer = this.clock.after(TIMEOUT_GRACE_MS, () => void this.sequencer.end(hostJobId, 'lost',
              `no result within ${TIMEOUT_GRACE_MS / 1000} s of the run's timeout (host unreachable?); the job is stopped when the host reconnects`));
          });
        }
        const end = (r: JobResult | undefined) => {
          h.timer?.cancel();
          if (!running.delete(hostJobId)) return;
          finished(r);
          done();
        };
        this.startHost(jobId, hostJobId, req, t, { sink, done: end }).catch((err: Error) => {
          const r = controllerResult(hostJobId, 'failed', `the controller could not start this host's job: ${err.message}`);
          sink({ agentId: t.agentId, hostname: t.hostname, event: { $case: 'result', value: r } });
          end(r);
        });
        return true;
      }, () => signal.aborted);
      // Cancelled: the hosts' results still arrive (and are stored), but the
      // operator's call is gone; wait for none of them.
      await Promise.race([all, aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return summary;
  }

  /** The JobStart an agent is sent for one host's part of a job. */
  jobStart(hostJobId: string, req: JobDispatch): JobStart {
    if ('exec' in req) return { jobId: hostJobId, kind: JobKind.JOB_KIND_EXEC, exec: req.exec, plan: undefined, params: {}, bundles: [], check: false };
    return { jobId: hostJobId, kind: JobKind.JOB_KIND_PLAN, plan: req.signed, params: req.params, bundles: req.bundles, check: req.check, exec: undefined };
  }

  /** Records a job (the row host jobs belong to) without starting any host; rollouts start hosts one by one. */
  async createJob(jobId: string, req: Omit<RunJobRequest, 'concurrency'>): Promise<void> {
    const dispatch = { signed: req.signed, params: req.params, bundles: req.bundles, check: req.check };
    await this.db.run('INSERT INTO jobs (id, plan_id, params, check_mode, created_at, created_by, dispatch) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [jobId, req.planId, JSON.stringify(req.params), req.check ? 1 : 0, Date.now(), req.createdBy, JSON.stringify(dispatch)]);
  }

  /**
   * Starts one host's part of job `jobId` as `hostJobId` (new: agents never
   * run a job id twice). `hooks.done` is called once with the result, also
   * when the job is found lost.
   */
  async startHost(jobId: string, hostJobId: string, req: Pick<RunJobRequest, 'signed' | 'params' | 'bundles' | 'check'>,
    t: { agentId: string; hostname: string }, hooks: HostJobHooks): Promise<void> {
    const start = this.jobStart(hostJobId, req);
    await this.dispatch(jobId, t, start, this.listener(t, start, hooks));
    hooks.sink?.({ agentId: t.agentId, hostname: t.hostname, event: { $case: 'started', value: hostJobId } });
  }

  /**
   * Records host job `start.jobId` of job `runId` in the store and sends its
   * start to the agent's session here, or hints the mailboxes when the
   * session is on another replica (or none: hello reconciles it). Any kind.
   */
  async dispatch(runId: string, t: { agentId: string; hostname: string }, start: JobStart, listener: JobListener): Promise<void> {
    await this.sequencer.start(this.jobLog, { jobId: start.jobId, agentId: t.agentId, hostname: t.hostname, runId }, start, listener);
    // The host's session is on another replica (or none): its mailbox delivers the start from the store.
    if (!this.sessions.get(t.agentId)) this.sequencer.onRemoteWork();
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
    await this.sequencer.attach(hostJobId, this.listener(t, start, hooks));
    return this.hostJob(hostJobId);
  }

  /** One host job's stored state. */
  async hostJob(hostJobId: string): Promise<HostJobRow | undefined> {
    return this.db.get<HostJobRow>('SELECT host_job_id, job_id, agent_id, state, next_seq, step_index, step_count, step_id, message FROM job_hosts WHERE host_job_id = ?', [hostJobId]);
  }

  /**
   * Agents with a plan job not yet finished (agent id → host job id): a host
   * runs one plan job at a time. Ad-hoc commands (exec) never hold a host.
   */
  async busyAgents(): Promise<Map<string, string>> {
    const rows = await this.db.all<{ agent_id: string; host_job_id: string }>(
      `SELECT h.agent_id AS agent_id, h.host_job_id AS host_job_id FROM job_hosts h
        WHERE h.state IN ('dispatched', 'running') AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = h.job_id AND j.kind = 'exec')`);
    return new Map(rows.map((r) => [r.agent_id, r.host_job_id]));
  }

  /** An agent said hello: reconciles every job it holds or should hold, of either kind (see JobSequencer.onHello). */
  onHello(agentId: string, openJobs: readonly string[]): Promise<Array<{ jobId: string; seq: number }>> {
    return this.sequencer.onHello(agentId, openJobs);
  }

  /** Output, step events and results of any job, applied in order per job. */
  onMessage(agentId: string, jobId: string, seq: number, m: JobMessage): Promise<void> {
    return this.sequencer.onMessage(agentId, jobId, seq, m);
  }

  /** Cancels a host job (operator abort), wherever its agent's session is. */
  cancel(hostJobId: string, agentId: string): void {
    void this.sequencer.cancel(hostJobId, agentId, 'cancelled by the operator');
  }

  /** Plan job messages as JobEvents for the operator. */
  private listener(t: { agentId: string; hostname: string }, start: JobStart, hooks: HostJobHooks): JobListener {
    const base = { agentId: t.agentId, hostname: t.hostname };
    return {
      start,
      onMessage: (seq, m) => {
        if (m.output) {
          hooks.sink?.({ ...base, event: { $case: 'line', value: {
            ...base, stderr: m.output.stream === OutputStream.OUTPUT_STREAM_STDERR, line: m.output.line, seq, timeMs: m.output.timeMs,
          } } });
        } else if (m.step) hooks.sink?.({ ...base, event: { $case: 'step', value: m.step } });
      },
      onEnd: (r) => {
        hooks.sink?.({ ...base, event: { $case: 'result', value: r } });
        hooks.done?.(r);
      },
      onLink: (connected) => hooks.sink?.({ ...base, event: { $case: 'link', value: { ...base, connected } } }),
    };
  }
}
