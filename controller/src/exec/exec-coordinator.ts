import { randomBytes } from 'node:crypto';
import type { ExecEvent, ExecHostFinished, ExecRequest, ExecSummary } from '../../../common/src/gen/ferry/v1/admin.js';
import { OutputStream, type ExecOutput, type ExecResult } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { SessionRegistry } from '../sessions/registry.js';

/** A matched host, as resolved from the store before dispatch. */
export interface ExecTarget {
  agentId: string;
  hostname: string;
}

interface HostJob {
  jobId: string;
  target: ExecTarget;
  /** Next sequence number expected from the agent; everything below is held. */
  nextSeq: number;
  finish: (f: Omit<ExecHostFinished, 'agentId' | 'hostname'>) => void;
  sink: (ev: ExecEvent) => void;
}

const DEFAULT_TIMEOUT_MS = 10 * 60_000;
/** How long past its timeout a job may stay silent before the controller gives up on it. */
const LOST_GRACE_MS = 30_000;

/**
 * Runs ad-hoc commands across agents. Keeps, per job, the next sequence
 * number it expects, so output resent after a reconnect is neither lost nor
 * shown twice, and acknowledges only what it holds.
 */
export class ExecCoordinator {
  private readonly jobs = new Map<string, HostJob>();

  constructor(private readonly sessions: SessionRegistry, private readonly log: Logger) {}

  /** Runs `req` on `targets`, reporting through `sink`, until all hosts finish or `signal` aborts. */
  async run(req: ExecRequest, targets: ExecTarget[], sink: (ev: ExecEvent) => void, signal: AbortSignal): Promise<ExecSummary> {
    const summary: ExecSummary = { matched: targets.length, succeeded: 0, failed: 0, offline: 0 };
    const timeoutMs = req.timeoutMs || DEFAULT_TIMEOUT_MS;
    const queue = [...targets];
    const running = new Set<HostJob>();
    const limit = req.concurrency > 0 ? req.concurrency : Number.POSITIVE_INFINITY;
    const runId = randomBytes(6).toString('hex');

    await new Promise<void>((resolveAll) => {
      const maybeDone = () => {
        if (queue.length === 0 && running.size === 0) resolveAll();
      };
      const startNext = () => {
        while (running.size < limit && queue.length > 0 && !signal.aborted) {
          const target = queue.shift()!;
          const session = this.sessions.get(target.agentId);
          if (!session) {
            summary.offline++;
            sink({ event: { $case: 'finished', value: { ...target, ...emptyFinish(), exitCode: -1, offline: true, error: 'not connected' } } });
            continue;
          }
          const jobId = `x-${runId}-${target.agentId}`;
          let guard: NodeJS.Timeout | undefined;
          const job: HostJob = {
            jobId, target, nextSeq: 1, sink,
            finish: (f) => {
              if (!this.jobs.delete(jobId)) return;
              clearTimeout(guard);
              running.delete(job);
              const ok = f.exitCode === 0 && !f.error && !f.timedOut && !f.cancelled;
              if (ok) summary.succeeded++;
              else summary.failed++;
              sink({ event: { $case: 'finished', value: { ...target, ...f } } });
              startNext();
              maybeDone();
            },
          };
          guard = setTimeout(() => job.finish({ ...emptyFinish(), exitCode: -1, error: 'no result from the agent in time (host lost?)' }),
            timeoutMs + LOST_GRACE_MS);
          this.jobs.set(jobId, job);
          running.add(job);
          sink({ event: { $case: 'started', value: { ...target, jobId } } });
          session.send({
            msg: { $case: 'execStart', value: { jobId, argv: req.argv, timeoutMs, env: req.env, cwd: req.cwd } },
          });
        }
        maybeDone();
      };
      signal.addEventListener('abort', () => {
        queue.length = 0;
        for (const job of [...running]) {
          this.sessions.get(job.target.agentId)?.send({ msg: { $case: 'execCancel', value: { jobId: job.jobId, reason: 'operator cancelled' } } });
          job.finish({ ...emptyFinish(), exitCode: -1, cancelled: true, error: 'cancelled by the operator' });
        }
        maybeDone();
      }, { once: true });
      startNext();
    });
    return summary;
  }

  /** The sequence numbers held for jobs an agent reports open; unknown jobs are cancelled. */
  onHello(agentId: string, allOpenJobs: string[]): Array<{ jobId: string; seq: number }> {
    const acked: Array<{ jobId: string; seq: number }> = [];
    // Plan jobs ("j-...") belong to the job coordinator.
    const openJobs = allOpenJobs.filter((id) => id.startsWith('x-'));
    for (const jobId of openJobs) {
      const job = this.jobs.get(jobId);
      if (job && job.target.agentId === agentId) {
        acked.push({ jobId, seq: job.nextSeq - 1 });
      } else {
        // The operator's command is gone (controller restarted or caller left):
        // stop the work rather than let it run with nobody listening.
        this.sessions.get(agentId)?.send({ msg: { $case: 'execCancel', value: { jobId, reason: 'the controller no longer tracks this job' } } });
      }
    }
    // Jobs dispatched to this agent that it does not know never reached it or
    // died with its process; reporting them lost is safer than running twice.
    for (const job of [...this.jobs.values()]) {
      if (job.target.agentId === agentId && !openJobs.includes(job.jobId)) {
        job.finish({ ...emptyFinish(), exitCode: -1, error: 'the agent reconnected without this job: it never started or the agent restarted' });
      }
    }
    return acked;
  }

  onOutput(agentId: string, out: ExecOutput): void {
    const job = this.accept(agentId, out.jobId, out.seq);
    if (!job) return;
    job.sink({
      event: {
        $case: 'line',
        value: {
          agentId, hostname: job.target.hostname, stderr: out.stream === OutputStream.OUTPUT_STREAM_STDERR,
          line: out.line, seq: out.seq, timeMs: out.timeMs,
        },
      },
    });
  }

  onResult(agentId: string, res: ExecResult): void {
    const job = this.accept(agentId, res.jobId, res.seq);
    if (!job) return;
    job.finish({
      exitCode: res.exitCode, signal: res.signal, timedOut: res.timedOut, cancelled: res.cancelled,
      error: res.error, durationMs: res.durationMs, offline: false,
    });
  }

  /** Acks in-order messages, drops duplicates, ignores jobs it does not know. */
  private accept(agentId: string, jobId: string, seq: number): HostJob | undefined {
    const session = this.sessions.get(agentId);
    const job = this.jobs.get(jobId);
    if (!job || job.target.agentId !== agentId) {
      session?.ack(jobId, seq); // let the agent free its buffer
      return undefined;
    }
    if (seq < job.nextSeq) {
      session?.ack(jobId, job.nextSeq - 1);
      return undefined;
    }
    if (seq > job.nextSeq) {
      this.log.warn({ agentId, jobId, seq, expected: job.nextSeq }, 'out-of-order message dropped; the agent resends it after reconnecting');
      return undefined;
    }
    job.nextSeq = seq + 1;
    session?.ack(jobId, seq);
    return job;
  }
}

function emptyFinish(): Omit<ExecHostFinished, 'agentId' | 'hostname'> {
  return { exitCode: 0, signal: '', timedOut: false, cancelled: false, error: '', durationMs: 0, offline: false };
}
