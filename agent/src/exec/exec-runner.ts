import { OutputStream, type AgentMessage, type ExecSpec } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { Outbox } from '../session/outbox.js';
import { runProcess } from '../../../common/src/proc/run-process.js';

/** Lines per job kept for the controller; beyond this a single marker says how many were dropped. */
const MAX_LINES_PER_JOB = 100_000;
/** Job ids remembered to ignore resent starts (bounded: the agent runs for months). */
const MAX_REMEMBERED_JOBS = 10_000;

/**
 * Where exec job ids are journaled on disk (the plan jobs' done markers,
 * jobs/job-store.ts): a job id is written before its command runs, so a
 * start the controller sends again after this agent restarted is refused.
 */
export interface ExecJournal {
  known(id: string): boolean;
  remember(id: string): void;
}

/** An exec job as the runner takes it: the JobStart's id and its exec spec. */
export type ExecJob = ExecSpec & { jobId: string };

/**
 * Runs commands the controller sends, each in its own process group so a
 * timeout or a cancel reaches every process it started. Output lines and the
 * result go to the outbox with per-job sequence numbers.
 */
export class ExecRunner {
  /** Running jobs and how to cancel them. */
  private readonly running = new Map<string, AbortController>();
  private readonly seen = new Set<string>();

  /** `journal`: without one (tests), job ids are remembered only by this process. */
  constructor(private readonly outbox: Outbox, private readonly log: Logger, private readonly journal?: ExecJournal) {}

  /** Jobs still executing. */
  jobIds(): string[] {
    return [...this.running.keys()];
  }

  start(job: ExecJob): void {
    // A job id runs at most once per agent process, even if the start is resent.
    if (this.seen.has(job.jobId)) return;
    this.seen.add(job.jobId);
    // A resent start arrives within one reconnect; the oldest ids can go.
    if (this.seen.size > MAX_REMEMBERED_JOBS) this.seen.delete(this.seen.values().next().value!);
    if (this.refused(job)) return;
    let seq = 0;
    let lines = 0;
    let dropped = 0;
    const emit = (m: AgentMessage['msg']) => this.outbox.push(job.jobId, seq, { msg: m });
    const onLine = (stream: OutputStream) => (line: string) => {
      if (lines >= MAX_LINES_PER_JOB) {
        dropped++;
        return;
      }
      lines++; // the runner already cut overlong lines
      seq++;
      emit({ $case: 'output', value: { jobId: job.jobId, seq, stream, line, timeMs: Date.now() } });
    };
    // The runner puts the command in its own process group and ends all of it on timeout or cancel.
    const ac = new AbortController();
    this.running.set(job.jobId, ac);
    this.log.info({ job: job.jobId, argv: job.argv }, 'exec started');
    void runProcess({
      argv: job.argv, env: job.env, cwd: job.cwd || undefined, signal: ac.signal, timeoutMs: job.timeoutMs > 0 ? job.timeoutMs : undefined,
      captureBytes: 0, onLine: (line, s) => onLine(s === 'stdout' ? OutputStream.OUTPUT_STREAM_STDOUT : OutputStream.OUTPUT_STREAM_STDERR)(line),
    }).then((r) => {
      this.running.delete(job.jobId);
      if (dropped > 0) {
        seq++;
        emit({ $case: 'output', value: {
          jobId: job.jobId, seq, stream: OutputStream.OUTPUT_STREAM_STDERR, timeMs: Date.now(),
          line: `[ferry: output truncated after ${MAX_LINES_PER_JOB} lines; ${dropped} more lines dropped]`,
        } });
      }
      seq++;
      const error = r.startError ?? (r.timedOut ? `timed out after ${job.timeoutMs} ms` : '');
      emit({ $case: 'jobResult', value: {
        jobId: job.jobId, seq,
        status: r.cancelled ? 'cancelled' : !error && r.exitCode === 0 ? 'succeeded' : 'failed',
        message: error,
        durationMs: r.durationMs,
        exit: { exitCode: r.exitCode ?? -1, signal: r.signal ?? '', timedOut: r.timedOut },
        failedStep: '', changed: 0, unchanged: 0, skipped: 0,
      } });
      this.log.info({ job: job.jobId, exitCode: r.exitCode, signal: r.signal }, 'exec finished');
    });
  }

  /**
   * A start this process has not seen but the journal has: an earlier agent
   * process took the job on (ran it, or was running it when it stopped), and
   * its output went with that process. Answered with the job's only message,
   * a lost result (seq 1: the controller resends a start only while it holds
   * nothing of the job), never run again. A job id that cannot be journaled
   * is not run either: it could not be refused after a restart.
   */
  private refused(job: ExecJob): boolean {
    let why: string;
    let status = 'lost';
    try {
      if (!this.journal || !this.journal.known(job.jobId)) {
        this.journal?.remember(job.jobId);
        return false;
      }
      why = 'this agent restarted after it took the command on; it is not run again (its output, if any, was lost with the process)';
    } catch (err) {
      status = 'failed';
      why = `the agent could not journal the job id, so could not refuse it after a restart; not run: ${(err as Error).message}`;
    }
    this.log.warn({ job: job.jobId, why }, 'exec start refused');
    this.outbox.push(job.jobId, 1, { msg: { $case: 'jobResult', value: {
      jobId: job.jobId, seq: 1, status, message: why, durationMs: 0,
      exit: { exitCode: -1, signal: '', timedOut: false }, failedStep: '', changed: 0, unchanged: 0, skipped: 0,
    } } });
    return true;
  }

  cancel(jobId: string): void {
    this.running.get(jobId)?.abort(new Error('cancelled'));
  }

  /** Cancels every running job (agent shutdown). */
  cancelAll(): void {
    for (const id of this.running.keys()) this.cancel(id);
  }
}
