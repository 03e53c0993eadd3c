import type { ExecEvent, ExecHostFinished, ExecRequest, ExecSummary } from '../../../common/src/gen/ferry/v1/admin.js';
import { JobKind, OutputStream, type JobOutput, type JobResult, type JobStart } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { fanOut } from '../jobs/fan-out.js';
import type { JobCoordinator } from '../jobs/job-coordinator.js';
import { EXEC_HISTORY_LINES, type JobHistory } from '../jobs/job-history.js';
import { newJobId } from '../jobs/held-job.js';

/** A matched host, as resolved from the store before dispatch. */
export interface ExecTarget {
  agentId: string;
  hostname: string;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
/** How long past its timeout a job may stay silent before the controller gives up on it. */
const LOST_GRACE_MS = 30_000;

/**
 * Runs ad-hoc commands across agents as exec jobs: one job per host, kept in
 * memory, sequenced, acknowledged and reconciled on reconnect by the same
 * sequencer as plan jobs, so output resent after a reconnect is neither lost
 * nor shown twice.
 */
export class ExecCoordinator {
  constructor(private readonly jobs: JobCoordinator, private readonly history: JobHistory, private readonly log: Logger) {}

  /** Runs `req` on `targets` for `createdBy`, reporting through `sink`, until all hosts finish or `signal` aborts; kept in the job history. */
  async run(req: ExecRequest, createdBy: string, targets: ExecTarget[], sink: (ev: ExecEvent) => void, signal: AbortSignal): Promise<ExecSummary> {
    const summary: ExecSummary = { matched: targets.length, succeeded: 0, failed: 0, offline: 0 };
    const timeoutMs = req.timeoutMs || DEFAULT_TIMEOUT_MS;
    const runId = newJobId();
    await this.history.createExec(runId, req.argv, createdBy, Date.now());
    // History is a record, not the delivery path: a failed write is logged, never fails the run.
    const record = (p: Promise<void>) => p.catch((err: Error) => this.log.error({ err, runId }, 'could not record exec history'));
    const seq = this.jobs.sequencer;
    /** Running host jobs: how to end each now (operator abort). */
    const running = new Map<string, { agentId: string; finish: (f: Omit<ExecHostFinished, 'agentId' | 'hostname'>) => void }>();
    const onAbort = () => {
      for (const [jobId, job] of [...running]) {
        void seq.cancel(jobId, job.agentId, 'operator cancelled');
        job.finish({ ...emptyFinish(), exitCode: -1, cancelled: true, error: 'cancelled by the operator' });
        void seq.end(jobId, 'cancelled', 'cancelled by the operator');
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    // Exec jobs live in this replica's memory (the agent remembers exec job ids only in memory, so a start
    // re-sent from the store could run twice): a host whose session is on another replica is not reached; say so.
    const elsewhere = targets.some((t) => !seq.connected(t.agentId)) ? await this.jobs.connectedElsewhere() : new Set<string>();
    try {
      await fanOut(targets, req.concurrency, (target, done) => {
        if (!seq.connected(target.agentId)) {
          const why = elsewhere.has(target.agentId)
            ? 'connected to another controller replica: ferry exec reaches only the hosts connected to the replica asked (docs/ha.md); use ferry run with a plan, or ask that replica'
            : 'not connected';
          summary.offline++;
          sink({ event: { $case: 'finished', value: { ...target, ...emptyFinish(), exitCode: -1, offline: true, error: why } } });
          void record(this.history.finishExecHost({ jobId: runId, hostJobId: `${runId}-${target.agentId}`, ...target, state: 'offline', message: why, at: Date.now() }, [], 0, undefined));
          return false;
        }
        const jobId = `${runId}-${target.agentId}`;
        let guard: NodeJS.Timeout | undefined;
        let ended = false;
        const kept: Array<{ seq: number; output: JobOutput }> = [];
        let dropped = 0;
        let result: JobResult | undefined;
        const finish = (f: Omit<ExecHostFinished, 'agentId' | 'hostname'>) => {
          if (ended) return;
          ended = true;
          const state = f.cancelled ? 'cancelled' : f.exitCode === 0 && !f.error && !f.timedOut ? 'succeeded' : result?.status === 'lost' ? 'lost' : 'failed';
          void record(this.history.finishExecHost({ jobId: runId, hostJobId: jobId, ...target, state, message: f.error, at: Date.now() }, kept, dropped, result));
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
        const start: JobStart = {
          jobId, kind: JobKind.JOB_KIND_EXEC, exec: { argv: req.argv, timeoutMs, env: req.env, cwd: req.cwd },
          plan: undefined, params: {}, bundles: [], check: false,
        };
        sink({ event: { $case: 'started', value: { ...target, jobId } } });
        seq.start(this.jobs.execLog, { ...target, jobId, runId }, start, {
          onMessage: (n, m) => {
            if (!m.output) return;
            if (kept.length < EXEC_HISTORY_LINES) kept.push({ seq: n, output: m.output });
            else dropped++;
            sink({ event: { $case: 'line', value: {
              ...target, stderr: m.output.stream === OutputStream.OUTPUT_STREAM_STDERR, line: m.output.line, seq: n, timeMs: m.output.timeMs,
            } } });
          },
          onEnd: (r) => { result = r; finish(hostFinished(r)); },
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
function hostFinished(r: JobResult): Omit<ExecHostFinished, 'agentId' | 'hostname'> {
  return {
    exitCode: r.exit?.exitCode ?? -1, signal: r.exit?.signal ?? '', timedOut: r.exit?.timedOut ?? false,
    cancelled: r.status === 'cancelled', error: r.message, durationMs: r.durationMs, offline: false,
  };
}

function emptyFinish(): Omit<ExecHostFinished, 'agentId' | 'hostname'> {
  return { exitCode: 0, signal: '', timedOut: false, cancelled: false, error: '', durationMs: 0, offline: false };
}
