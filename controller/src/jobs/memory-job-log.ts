import type { JobKind } from '../../../common/src/gen/ferry/v1/session.js';
import { TERMINAL, type HeldJob, type JobLog } from './held-job.js';

/**
 * Jobs kept only in the controller's memory (exec: an ad-hoc command is
 * watched by the operator's call and forgotten when it ends or the
 * controller restarts). Ended jobs are dropped at once.
 */
export class MemoryJobLog implements JobLog {
  private readonly jobs = new Map<string, HeldJob>();

  constructor(readonly kind: JobKind) {}

  async create(job: HeldJob): Promise<void> {
    this.jobs.set(job.jobId, job);
  }

  async load(jobId: string): Promise<HeldJob | undefined> {
    return this.jobs.get(jobId);
  }

  async unfinished(agentId: string): Promise<HeldJob[]> {
    return [...this.jobs.values()].filter((j) => j.agentId === agentId);
  }

  async append(job: HeldJob, _seq: number, _m: unknown, state: string): Promise<void> {
    if (TERMINAL.has(state)) this.jobs.delete(job.jobId);
  }

  async end(job: HeldJob): Promise<void> {
    this.jobs.delete(job.jobId);
  }
}
