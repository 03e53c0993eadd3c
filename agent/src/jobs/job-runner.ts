import type { AgentMessage, JobStart } from '../../../common/src/gen/ferry/v1/session.js';
import { OutputStream } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { Plan, StepOutcome } from '../../../common/src/plan/types.js';
import { parsePlan } from '../../../common/src/plan/parse.js';
import { formatProblems } from '../../../common/src/plan/plan-problems.js';
import { resolveParams } from '../../../common/src/plan/expand-params.js';
import { verifyPlan } from '../../../common/src/plan/signed-plan.js';
import { asFerryError, ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Outbox } from '../session/outbox.js';
import { endGroup } from '../../../common/src/proc/process-group.js';
import type { GroupTracker } from '../../../common/src/proc/run-process.js';
import type { FleetTlsPaths, StepContext } from '../steps/step.js';
import type { JobStore } from './job-store.js';
import { runStep, type StepRunDeps } from './step-attempts.js';

export interface JobRunnerDeps extends StepRunDeps {
  store: JobStore;
  outbox: Outbox;
  log: Logger;
  trustedKeys(): readonly string[];
  /** Makes sure the job's bundles are staged; returns alias → files directory. */
  bundles(job: JobStart, signal: AbortSignal): Promise<Record<string, string>>;
  facts(): Promise<Record<string, unknown>>;
  labels(): Record<string, string>;
  stateDir: string;
  root: string;
  /** The agent's fleet TLS file paths, handed to steps (see StepContext.fleet). */
  fleet?: FleetTlsPaths;
  /** Registry addresses of this host's relays now (see StepContext.relayRegistries). */
  relayRegistries?: () => readonly string[];
}

/** Lines per step forwarded to the controller; the rest are counted and replaced by one marker. */
const MAX_LINES_PER_STEP = 10_000;

/**
 * Runs plan jobs on this host. Every step start and end is journaled (fsync)
 * before it counts, and every message for the controller is kept on disk
 * until acknowledged, so a killed agent or rebooted host resumes the job at
 * the interrupted step — re-running it, which is safe because steps are
 * idempotent — and loses no output.
 */
export class JobRunner {
  private readonly running = new Map<string, AbortController>();
  private readonly seqs = new Map<string, number>();
  /** Jobs whose result is journaled: they retire once the controller has acknowledged everything. */
  private readonly finished = new Set<string>();
  private suspending = false;

  constructor(private readonly d: JobRunnerDeps) {}

  jobIds(): string[] {
    return [...this.running.keys()];
  }

  /** Agent start: reload unacknowledged messages and resume unfinished jobs. */
  resumeAll(): void {
    for (const job of this.d.store.pending()) {
      const { messages, lastSeq } = this.d.store.unacked(job.jobId);
      this.seqs.set(job.jobId, lastSeq);
      for (const m of messages) this.d.outbox.push(job.jobId, m.seq, m.msg);
      const finished = this.d.store.journal(job.jobId).some((e) => e.t === 'result');
      if (finished) {
        this.finished.add(job.jobId);
        if (messages.length === 0) this.retire(job.jobId);
      } else {
        this.launch(job, true);
      }
    }
  }

  start(job: JobStart): void {
    if (this.d.store.known(job.jobId)) return; // resent start: never run twice
    this.d.store.create(job);
    this.seqs.set(job.jobId, 0);
    this.launch(job, false);
  }

  cancel(jobId: string): void {
    this.running.get(jobId)?.abort(new Error('cancelled by the controller'));
  }

  /**
   * Agent shutdown: stop running steps without finishing their jobs, so the
   * journal still shows the step as started and the next agent start resumes
   * it. Resolves when every job has stopped.
   */
  async suspendAll(): Promise<void> {
    this.suspending = true;
    for (const ac of this.running.values()) ac.abort(new Error('agent shutting down'));
    while (this.running.size > 0) await new Promise((r) => setTimeout(r, 20));
    this.d.store.close();
  }

  /** The controller acknowledged up to `seq`; a finished job that is fully acknowledged is retired. */
  acked(jobId: string, seq: number): void {
    if (!this.seqs.has(jobId)) return;
    this.d.store.ack(jobId, seq);
    // Only a finished job retires: a suspended one (agent shutting down) must
    // survive for the next start to resume it, even if all it said is acked.
    if (this.finished.has(jobId) && seq >= (this.seqs.get(jobId) ?? 0)) this.retire(jobId);
  }

  private retire(jobId: string): void {
    this.seqs.delete(jobId);
    this.finished.delete(jobId);
    this.d.store.retire(jobId);
  }

  private emit(jobId: string, build: (seq: number) => AgentMessage['msg'], sync = false): void {
    const seq = (this.seqs.get(jobId) ?? 0) + 1;
    this.seqs.set(jobId, seq);
    const msg: AgentMessage = { msg: build(seq) };
    this.d.store.appendMessage(jobId, seq, msg, sync);
    this.d.outbox.push(jobId, seq, msg);
  }

  private launch(job: JobStart, resumed: boolean): void {
    const ac = new AbortController();
    this.running.set(job.jobId, ac);
    void this.run(job, resumed, ac.signal).finally(() => {
      this.running.delete(job.jobId);
      this.d.store.flush();
    });
  }

  private async run(job: JobStart, resumed: boolean, signal: AbortSignal): Promise<void> {
    const started = Date.now();
    const id = job.jobId;
    const counts = { changed: 0, unchanged: 0, skipped: 0 };
    const finish = (status: string, message: string, failedStep = '') => {
      this.d.store.record(id, { t: 'result', status, at: Date.now() });
      this.finished.add(id);
      this.emit(id, (seq) => ({ $case: 'jobResult', value: {
        jobId: id, seq, status, failedStep, message, durationMs: Date.now() - started, ...counts, exit: undefined,
      } }), true);
      this.d.log.info({ job: id, status, failedStep }, 'job finished');
    };
    let plan: Plan;
    let params: Record<string, unknown>;
    let bundleDirs: Record<string, string>;
    try {
      // A killed agent's step may still be running: end it before anything runs again.
      if (resumed) await this.endLeftovers(id);
      const text = verifyPlan(job.plan!, this.d.trustedKeys());
      const parsed = parsePlan(text, job.plan!.file, { schemas: this.d.schemas });
      if (!parsed.plan) throw new FerryError(ErrorCode.InvalidArgument, `plan ${job.plan!.file} is invalid on this agent:\n${formatProblems(parsed.problems)}`, 'this agent may be older than the controller; upgrade it');
      plan = parsed.plan;
      params = resolveParams(plan, job.params);
      bundleDirs = await this.d.bundles(job, signal);
    } catch (err) {
      if (this.suspending) return;
      finish(signal.aborted ? 'cancelled' : 'failed', asFerryError(err).describe());
      return;
    }
    const journal = this.d.store.journal(id);
    const done = new Map(journal.filter((e) => e.t === 'done').map((e) => [(e as { i: number }).i, (e as { status: string }).status]));
    const interrupted = new Set(journal.filter((e) => e.t === 'start').map((e) => (e as { i: number }).i));
    if (resumed) this.note(id, `[ferry] agent restarted: resuming ${plan.name} at step ${done.size + 1}/${plan.steps.length}`);
    const facts = await this.d.facts();

    for (let i = 0; i < plan.steps.length; i++) {
      const step = plan.steps[i]!;
      if (done.has(i)) {
        const st = done.get(i)!;
        if (st in counts) counts[st as keyof typeof counts]++;
        continue;
      }
      if (signal.aborted) {
        finish('cancelled', `cancelled before step ${step.id}`);
        return;
      }
      const wasInterrupted = interrupted.has(i);
      this.d.store.record(id, { t: 'start', i, attempt: 1, at: Date.now() });
      this.emit(id, (seq) => ({ $case: 'stepEvent', value: stepEvent(id, seq, i, plan, { finished: false, resumed: wasInterrupted }) }), true);
      let lines = 0;
      let dropped = 0;
      const t0 = Date.now();
      const ctx: Omit<StepContext, 'signal'> = {
        check: job.check, params, facts, labels: this.d.labels(), stateDir: this.d.stateDir, root: this.d.root, fleet: this.d.fleet, relayRegistries: this.d.relayRegistries?.(),
        bundleDir: (as) => {
          const dir = bundleDirs[as];
          if (!dir) throw new Error(`bundle "${as}" is not declared by plan ${plan.name}`);
          return dir;
        },
        track: this.tracker(id, i),
        output: (line, stream = 'stdout') => {
          if (lines >= MAX_LINES_PER_STEP) { dropped++; return; }
          lines++;
          this.emit(id, (seq) => ({ $case: 'output', value: {
            jobId: id, seq, line, timeMs: Date.now(),
            stream: stream === 'stderr' ? OutputStream.OUTPUT_STREAM_STDERR : OutputStream.OUTPUT_STREAM_STDOUT,
          } }));
        },
      };
      const outcome: StepOutcome = await runStep(step, ctx, signal, this.d, { plan, params, bundleDirs, facts, labels: ctx.labels });
      if (this.suspending) return; // not done: the next agent start re-runs this step
      if (dropped > 0) ctx.output(`[ferry: step output truncated after ${MAX_LINES_PER_STEP} lines; ${dropped} more lines dropped]`, 'stderr');
      this.d.store.record(id, { t: 'done', i, status: outcome.status, at: Date.now() });
      if (outcome.status in counts) counts[outcome.status as keyof typeof counts]++;
      this.emit(id, (seq) => ({ $case: 'stepEvent', value: {
        ...stepEvent(id, seq, i, plan, { finished: true, resumed: wasInterrupted }),
        status: outcome.status, diff: outcome.diff ?? '', message: outcome.message, errorCode: outcome.errorCode ?? '', durationMs: Date.now() - t0,
      } }), true);
      if (outcome.status === 'failed') {
        finish(signal.aborted ? 'cancelled' : 'failed', `step ${step.id} (${step.type}) failed: ${outcome.message}`, step.id);
        return;
      }
    }
    finish('succeeded', `${plan.steps.length} steps: ${counts.changed} changed, ${counts.unchanged} unchanged, ${counts.skipped} skipped`);
  }

  /** Journals each process group step `i` starts and ends (fsynced before the step awaits its output). */
  private tracker(jobId: string, i: number): GroupTracker {
    return {
      started: (g) => this.d.store.record(jobId, { t: 'proc', i, ...g, at: Date.now() }),
      ended: (g) => this.d.store.record(jobId, { t: 'procEnd', i, pgid: g.pgid, start: g.start, at: Date.now() }),
    };
  }

  /**
   * Ends the process groups a previous agent process started for this job and
   * never saw end (it was killed): SIGTERM, grace, SIGKILL, and waits until
   * they are gone, so a step never runs twice at once. A recorded pid that now
   * belongs to another process is left alone.
   */
  private async endLeftovers(jobId: string): Promise<void> {
    for (const g of this.d.store.leftoverGroups(jobId)) {
      const r = await endGroup(g);
      if (r === 'ended') this.note(jobId, `[ferry] ended process group ${g.pgid} that step ${g.i + 1} started before the agent restarted`);
      if (r === 'reused') this.note(jobId, `[ferry] process group ${g.pgid} of step ${g.i + 1} is gone (its pid now belongs to another process, left alone)`);
      this.d.store.record(jobId, { t: 'procEnd', i: g.i, pgid: g.pgid, start: g.start, at: Date.now() });
    }
  }

  private note(jobId: string, line: string): void {
    this.emit(jobId, (seq) => ({ $case: 'output', value: { jobId, seq, line, timeMs: Date.now(), stream: OutputStream.OUTPUT_STREAM_STDERR } }));
  }
}

function stepEvent(jobId: string, seq: number, i: number, plan: Plan, o: { finished: boolean; resumed: boolean }) {
  return {
    jobId, seq, stepIndex: i, stepCount: plan.steps.length, stepId: plan.steps[i]!.id, finished: o.finished, status: '',
    diff: '', message: '', errorCode: '', attempt: 1, resumed: o.resumed, durationMs: 0, timeMs: Date.now(),
  };
}
