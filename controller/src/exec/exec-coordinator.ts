import type { ExecEvent, ExecHostFinished, ExecRequest, ExecSummary } from '../../../common/src/gen/ferry/v1/admin.js';
import { OutputStream, type ExecSpec, type JobResult } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { fanOut } from '../jobs/fan-out.js';
import type { JobCoordinator, JobDispatch } from '../jobs/job-coordinator.js';
import type { JobHistory } from '../jobs/job-history.js';
import { newJobId } from '../jobs/held-job.js';

/** A matched host, as resolved from the store before dispatch. */
export interface ExecTarget {
  agentId: string;
  hostname: string;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
/** How long past its timeout a job may stay silent before the controller gives up on it. */
const LOST_GRACE_MS = 30_000;
/** How long a cancelled host on another replica may take to answer before its job is ended here as cancelled. */
const CANCEL_GRACE_MS = 30_000;

type Finish = Omit<ExecHostFinished, 'agentId' | 'hostname'>;

/**
 * Runs ad-hoc commands across agents as exec jobs: one host job per host,
 * recorded in the store and started through the same path as a plan job's
 * host (JobCoordinator.dispatch), so a host whose session is on another
 * replica gets it through the mailbox and its output, held there, is
 * followed back from the store to the operator here — in order, once — and
 * kept for `ferry jobs logs`.
 */
export class ExecCoordinator {
  constructor(private readonly jobs: JobCoordinator, private readonly history: JobHistory, private readonly log: Logger) {}

  /** Runs `req` on `targets` for `createdBy`, reporting through `sink`, until all hosts finish or `signal` aborts; kept in the job history. */
  async run(req: ExecRequest, createdBy: string, targets: ExecTarget[], sink: (ev: ExecEvent) => void, signal: AbortSignal): Promise<ExecSummary> {
    const summary: ExecSummary = { matched: targets.length, succeeded: 0, failed: 0, offline: 0 };
    const timeoutMs = req.timeoutMs || DEFAULT_TIMEOUT_MS;
    const runId = newJobId();
    const spec: ExecSpec = { argv: req.argv, timeoutMs, env: req.env, cwd: req.cwd };
    const dispatch: JobDispatch = { exec: spec };
    await this.history.createExec(runId, req.argv, createdBy, Date.now(), dispatch);
    const seq = this.jobs.sequencer;
    /** Running host jobs: how to end each now (operator abort). */
    const running = new Map<string, { agentId: string; finish: (f: Finish) => void }>();
    const onAbort = () => {
      for (const [jobId, job] of [...running]) {
        // Recorded in the store too, so the replica holding the session (this one or another) stops the command.
        void seq.cancel(jobId, job.agentId, 'operator cancelled');
        job.finish({ ...emptyFinish(), exitCode: -1, cancelled: true, error: 'cancelled by the operator' });
        if (seq.connected(job.agentId)) {
          void seq.end(jobId, 'cancelled', 'cancelled by the operator');
        } else {
          // Ending it now would stop the mailbox there from sending the cancel: let the host's result end it, within a grace.
          setTimeout(() => void seq.end(jobId, 'cancelled', 'cancelled by the operator; the host did not confirm in time'), CANCEL_GRACE_MS).unref();
        }
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    // A host with no session here is reached through the store when it has one on another replica.
    const elsewhere = targets.some((t) => !seq.connected(t.agentId)) ? await this.jobs.connectedElsewhere() : new Set<string>();
    try {
      await fanOut(targets, req.concurrency, (target, done) => {
        const jobId = `${runId}-${target.agentId}`;
        if (!seq.connected(target.agentId) && !elsewhere.has(target.agentId)) {
          summary.offline++;
          sink({ event: { $case: 'finished', value: { ...target, ...emptyFinish(), exitCode: -1, offline: true, error: 'not connected' } } });
          // History is a record, not the delivery path: a failed write is logged, never fails the run.
          this.history.recordOffline({ jobId: runId, hostJobId: jobId, ...target, message: 'not connected', at: Date.now() })
            .catch((err: Error) => this.log.error({ err, runId }, 'could not record an offline host'));
          return false;
        }
        let guard: NodeJS.Timeout | undefined;
        let ended = false;
        const finish = (f: Finish) => {
          if (ended) return;
          ended = true;
          clearTimeout(guard);
          running.delete(jobId);
          if (f.exitCode === 0 && !f.error && !f.timedOut && !f.cancelled) summary.succeeded++;
          else summary.failed++;
          sink({ event: { $case: 'finished', value: { ...target, ...f } } });
          done();
        };
        running.set(jobId, { agentId: target.agentId, finish });
        guard = setTimeout(() => {
          void seq.cancel(jobId, target.agentId, 'no result in time');
          void seq.end(jobId, 'lost', 'no result from the agent in time (host lost?)');
        }, timeoutMs + LOST_GRACE_MS);
        sink({ event: { $case: 'started', value: { ...target, jobId } } });
        const start = this.jobs.jobStart(jobId, dispatch);
        this.jobs.dispatch(runId, target, start, {
          start,
          onMessage: (n, m) => {
            if (!m.output) return;
            sink({ event: { $case: 'line', value: {
              ...target, stderr: m.output.stream === OutputStream.OUTPUT_STREAM_STDERR, line: m.output.line, seq: n, timeMs: m.output.timeMs,
            } } });
          },
          onEnd: (r) => finish(hostFinished(r)),
          onLink: (connected) => sink({ event: { $case: 'link', value: { ...target, connected } } }),
        }).catch((err: Error) => {
          this.log.error({ err, jobId }, 'could not start an exec job');
          finish({ ...emptyFinish(), exitCode: -1, error: `could not start: ${err.message}` });
        });
        return true;
      }, () => signal.aborted);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return summary;
  }
}

/** How a host's command ended, from its job result (the agent's, or the controller's when lost). */
function hostFinished(r: JobResult): Finish {
  return {
    exitCode: r.exit?.exitCode ?? -1, signal: r.exit?.signal ?? '', timedOut: r.exit?.timedOut ?? false,
    cancelled: r.status === 'cancelled', error: r.message, durationMs: r.durationMs, offline: false,
  };
}

function emptyFinish(): Finish {
  return { exitCode: 0, signal: '', timedOut: false, cancelled: false, error: '', durationMs: 0, offline: false };
}
