import { JobKind, type JobStart } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { SessionRegistry } from '../sessions/registry.js';
import { NO_METRICS, type JobMetrics } from '../metrics/metrics.js';
import { DuplicateKeyError } from '../store/db.js';
import { controllerResult, replay, TERMINAL, type Entry, type HeldJob, type JobListener, type JobLog, type JobMessage } from './held-job.js';
import { stepTypeOf } from './step-types.js';

/**
 * The one sequencer for every job of every agent. Messages of one job are
 * applied one at a time in arrival order (a queue per job id), so a read of
 * the next expected sequence number is never stale: each message is held
 * exactly once, duplicates are re-acknowledged and dropped, gaps wait for the
 * agent's resend. On hello it reconciles what the agent holds with what the
 * controller holds, under the same per-job queue.
 */
export class JobSequencer {
  private readonly live = new Map<string, Entry>();
  private readonly queues = new Map<string, Promise<unknown>>();

  /**
   * `rebuild` makes a job's start again from the store: with several
   * replicas, the one holding the agent's session is often not the one
   * that started the job, and a restarted controller has no start in memory.
   */
  constructor(private readonly sessions: SessionRegistry, private readonly log: Logger, private readonly logs: readonly JobLog[],
    private readonly metrics: JobMetrics = NO_METRICS, private readonly rebuild?: (job: HeldJob) => Promise<JobStart | undefined>) {
    sessions.onChange((agentId, up) => this.linkChanged(agentId, up));
  }

  /**
   * The mailbox (job-mailbox.ts) found job `jobId` still dispatched for an
   * agent whose session is on this replica: sends its start unless it was
   * already written to that very session. The agent runs a job id once, so
   * a start that reaches it twice (from two replicas) runs once.
   */
  deliver(jobId: string): Promise<boolean> {
    return this.serial(jobId, async () => {
      const e = await this.find(jobId, true);
      if (!e || e.job.state !== 'dispatched') return false;
      const session = this.sessions.get(e.job.agentId);
      if (!session || e.sentTo === session) return false;
      if (!e.listener?.start) {
        const start = await this.rebuild?.(e.job);
        if (!start) return false;
        e.listener = { ...e.listener, start };
      }
      this.sendStart(e);
      return true;
    });
  }

  /** Records a new job in `log` and sends its start to the agent (if connected; otherwise hello reconciles it). */
  start(log: JobLog, job: Omit<HeldJob, 'nextSeq' | 'state'>, start: JobStart, listener: JobListener): Promise<void> {
    return this.serial(job.jobId, async () => {
      const held: HeldJob = { ...job, nextSeq: 1, state: 'dispatched' };
      await log.create(held);
      const e: Entry = { job: held, log, listener: { ...listener, start } };
      this.live.set(job.jobId, e);
      this.metrics.hostJobStarted(start.kind === JobKind.JOB_KIND_EXEC ? 'exec' : 'plan');
      this.sendStart(e);
    });
  }

  /**
   * Re-attaches a listener to a job recorded before a controller restart; a
   * start still undelivered is sent again. Returns the held job (ended ones
   * are returned as they are, without calling the listener).
   */
  attach(jobId: string, listener: JobListener): Promise<HeldJob | undefined> {
    return this.serial(jobId, async () => {
      const e = await this.find(jobId);
      if (!e || TERMINAL.has(e.job.state)) return e?.job;
      e.listener = listener;
      if (e.job.state === 'dispatched') this.sendStart(e);
      return e.job;
    });
  }

  /** Applies one message of a job after every message of that job that arrived before it. */
  onMessage(agentId: string, jobId: string, seq: number, m: JobMessage): Promise<void> {
    return this.serial(jobId, () => this.apply(agentId, jobId, seq, m));
  }

  /**
   * The agent said hello holding `openJobs` (running, or with messages not yet
   * acknowledged). Returns what the controller holds of each; stops jobs
   * nobody tracks; sends again starts that may not have arrived (when the
   * kind allows it) and reports the rest of the agent's jobs it no longer
   * knows as lost, never re-run.
   */
  async onHello(agentId: string, openJobs: readonly string[]): Promise<Array<{ jobId: string; seq: number }>> {
    const session = this.sessions.get(agentId);
    // Another replica may have held this agent's session since this one last did: what it stored is the truth.
    for (const [id, e] of [...this.live]) {
      if (e.job.agentId === agentId) await this.serial(id, () => this.find(id, true));
    }
    const acked: Array<{ jobId: string; seq: number }> = [];
    const open = new Set(openJobs);
    for (const jobId of open) {
      await this.serial(jobId, async () => {
        const e = await this.find(jobId);
        const mine = e && e.job.agentId === agentId ? e : undefined;
        if (mine) acked.push({ jobId, seq: mine.job.nextSeq - 1 });
        // Unknown here, or given up on: nobody watches it, so stop it (a no-op for a job that finished).
        if (!mine || mine.job.state === 'lost') {
          session?.send({ msg: { $case: 'jobCancel', value: { jobId, reason: 'the controller no longer tracks this job' } } });
        }
      });
    }
    const held = new Set<string>();
    for (const log of this.logs) for (const j of await log.unfinished(agentId)) held.add(j.jobId);
    for (const [id, e] of this.live) if (e.job.agentId === agentId && !TERMINAL.has(e.job.state)) held.add(id);
    for (const jobId of held) {
      if (open.has(jobId)) continue;
      await this.serial(jobId, async () => {
        const e = await this.find(jobId);
        if (!e || e.job.agentId !== agentId || TERMINAL.has(e.job.state)) return;
        // Started after this hello was sent, on this very session: it is on its way.
        if (session && e.sentTo === session) return;
        let start = e.listener?.start;
        if (!start && e.job.state === 'dispatched') {
          start = await this.rebuild?.(e.job);
          if (start) e.listener = { ...e.listener, start };
        }
        if (e.job.state === 'dispatched' && start) {
          this.sendStart(e);
        } else if (e.job.state === 'dispatched' && !start) {
          await this.endNow(e, 'lost', 'the controller restarted before this host received the job; it did not run');
        } else {
          await this.endNow(e, 'lost', 'the agent no longer knows this job (it never arrived, or the agent restarted without it); it was not re-run');
        }
      });
    }
    return acked;
  }

  /** Ends a job without the agent's result (lost, or given up on here); its listener hears of it once. */
  end(jobId: string, state: string, message: string): Promise<void> {
    return this.serial(jobId, async () => {
      const e = await this.find(jobId);
      if (e && !TERMINAL.has(e.job.state)) await this.endNow(e, state, message);
    });
  }

  /** Whether the agent has a session now. */
  connected(agentId: string): boolean {
    return this.sessions.get(agentId) !== undefined;
  }

  /**
   * Asks the agent to stop a job (either kind); its result still arrives
   * through onMessage. The cancel is also recorded in the store,
   * so the replica holding the agent's session (wherever it is, now or
   * after a reconnect) sends it too: `onRemoteWork` hints the mailboxes.
   */
  cancel(jobId: string, agentId: string, reason: string): Promise<void> {
    const session = this.sessions.get(agentId);
    session?.send({ msg: { $case: 'jobCancel', value: { jobId, reason } } });
    const e = this.live.get(jobId);
    const log = e?.log ?? this.logs[0];
    if (!log || (e && TERMINAL.has(e.job.state))) return Promise.resolve();
    if (e && session) e.cancelSentTo = session;
    return log.requestCancel(jobId, reason).then(() => { if (!session) this.onRemoteWork(); },
      (err: Error) => this.log.warn({ err: err.message, jobId }, 'cancel not recorded in the store; only a session on this replica heard it'));
  }

  /** Called when work was recorded for an agent whose session is not on this replica (the mailbox's wake-up hint). */
  onRemoteWork: () => void = () => undefined;

  /**
   * The mailbox found a cancel recorded for job `jobId` of an agent whose
   * session is here: sends it unless this very session already had it (the
   * agent ignores a cancel of a job it finished or does not hold).
   */
  deliverCancel(jobId: string, reason: string): Promise<boolean> {
    return this.serial(jobId, async () => {
      const e = await this.find(jobId, true);
      if (!e || TERMINAL.has(e.job.state)) return false;
      const session = this.sessions.get(e.job.agentId);
      if (!session || e.cancelSentTo === session) return false;
      session.send({ msg: { $case: 'jobCancel', value: { jobId, reason } } });
      e.cancelSentTo = session;
      return true;
    });
  }

  /**
   * Jobs started here whose agent's session is on another replica: that
   * replica holds their messages in the store. Reads where they are in one
   * query and hands the listener every message it has not had, in order,
   * then the end. Called on the mailbox's follow timer.
   */
  async follow(): Promise<void> {
    const followed = [...this.live.values()].filter((e) => e.listener && !TERMINAL.has(e.job.state) && !this.sessions.get(e.job.agentId));
    for (const log of new Set(followed.map((e) => e.log))) {
      const mine = followed.filter((e) => e.log === log);
      for (let i = 0; i < mine.length; i += 500) {
        const batch = mine.slice(i, i + 500);
        const now = await log.progress(batch.map((e) => e.job.jobId));
        for (const e of batch) {
          const p = now.get(e.job.jobId);
          if (p && (p.nextSeq !== e.job.nextSeq || p.state !== e.job.state)) await this.serial(e.job.jobId, () => this.find(e.job.jobId, true));
        }
      }
    }
  }

  /** Tells the listeners of an agent's unfinished jobs that its session dropped or came back. */
  private linkChanged(agentId: string, up: boolean): void {
    for (const e of this.live.values()) {
      if (e.job.agentId !== agentId || TERMINAL.has(e.job.state) || Boolean(e.down) === !up) continue;
      e.down = !up;
      try {
        e.listener?.onLink?.(up);
      } catch (err) {
        this.log.error({ err, jobId: e.job.jobId }, 'a job listener failed on a session change');
      }
    }
  }

  private async apply(agentId: string, jobId: string, seq: number, m: JobMessage): Promise<void> {
    const session = this.sessions.get(agentId);
    const e = await this.find(jobId);
    if (!e || e.job.agentId !== agentId) {
      session?.ack(jobId, seq); // not ours to keep: let the agent free its buffer
      return;
    }
    const { job } = e;
    // Ahead of what this replica holds: another replica may have held the messages in between (the agent moved
    // while its old session there was still writing, after this one read the store at hello). Read it again first.
    if (seq > job.nextSeq) await this.find(jobId, true);
    if (seq < job.nextSeq) {
      session?.ack(jobId, job.nextSeq - 1);
      return;
    }
    if (TERMINAL.has(job.state)) {
      session?.ack(jobId, seq); // ended here already (lost, given up): its listener was told; drop
      return;
    }
    if (seq > job.nextSeq) {
      this.log.warn({ agentId, jobId, seq, expected: job.nextSeq }, 'job message after a gap dropped; the agent resends it after reconnecting');
      return;
    }
    const state = m.result ? m.result.status : job.state === 'dispatched' ? 'running' : job.state;
    try {
      await e.log.append(job, seq, m, state);
    } catch (err) {
      if (!(err instanceof DuplicateKeyError)) throw err;
      // Held already by another replica (the agent moved while this one still had its messages): take the store's count.
      await this.find(jobId, true);
      session?.ack(jobId, job.nextSeq - 1);
      return;
    }
    job.nextSeq = seq + 1;
    job.state = state;
    session?.ack(jobId, seq);
    // Here, past the duplicate check: a step resent after a reconnect counts once.
    if (m.step?.finished) this.metrics.stepFinished(stepTypeOf(e.listener?.start, m.step.stepId), m.step.status || 'unknown');
    e.listener?.onMessage?.(seq, m);
    if (m.result) {
      this.live.delete(jobId);
      e.listener?.onEnd?.(m.result);
    }
  }

  /** Writes the job's start to its agent's current session, if there is one (hello reconciles it otherwise). */
  private sendStart(e: Entry): void {
    const session = this.sessions.get(e.job.agentId);
    const start = e.listener?.start;
    if (!session || !start) return;
    session.send({ msg: { $case: 'jobStart', value: start } });
    e.sentTo = session;
  }

  private async endNow(e: Entry, state: string, message: string): Promise<void> {
    await e.log.end(e.job, state, message);
    e.job.state = state;
    this.live.delete(e.job.jobId);
    e.listener?.onEnd?.(controllerResult(e.job.jobId, state, message));
  }

  /**
   * The job from memory, else from the logs (kept in memory while it has
   * not ended). `fresh`: the job's state and next sequence number are
   * read again from the store (another replica may have moved them on).
   */
  private async find(jobId: string, fresh = false): Promise<Entry | undefined> {
    const known = this.live.get(jobId);
    if (known && !fresh) return known;
    for (const log of known ? [known.log] : this.logs) {
      const job = await log.load(jobId);
      if (!job) continue;
      if (known) {
        if (await replay(known, job)) this.live.delete(jobId);
        return known;
      }
      const e = { job, log };
      if (!TERMINAL.has(job.state)) this.live.set(jobId, e);
      return e;
    }
    return known;
  }

  /** Runs `fn` after everything queued for `jobId`: one job's work is applied one piece at a time, in order. */
  private serial<T>(jobId: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(jobId) ?? Promise.resolve()).then(fn);
    const tail = run.catch(() => undefined);
    this.queues.set(jobId, tail);
    void tail.then(() => { if (this.queues.get(jobId) === tail) this.queues.delete(jobId); });
    return run;
  }
}
