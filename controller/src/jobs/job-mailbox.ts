import type { Logger } from '../../../common/src/log.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { Db } from '../store/db.js';
import { PgDb } from '../store/pg-db.js';
import type { JobCoordinator } from './job-coordinator.js';

const CHANNEL = 'ferry_jobs';
/** How often jobs started here for hosts on other replicas are read back from the store (their output's latency). */
const FOLLOW_MS = 250;

/**
 * Work reaches the host wherever its session is. A plan job's start is a
 * row in job_hosts (state dispatched) whatever replica made it; the replica
 * holding the agent's session delivers it. Each replica looks for
 * dispatched rows of agents connected to it on a poll (every `pollMs`) and
 * at once on a PostgreSQL NOTIFY, which the replica that recorded the start
 * sends when the host is not connected to it (one hint per batch of
 * starts). The hint may be lost (NOTIFY is not replayed); the poll is what
 * guarantees delivery. Cancels travel the same way (job_hosts.cancel_reason).
 * The agent's results travel back through the store: the session replica
 * writes them to job_events and job_hosts, where the scheduler (on the
 * lease holder), `ferry jobs logs` and the replica that started the job
 * (following it every FOLLOW_MS) read them.
 */
export class JobMailbox {
  private timer: NodeJS.Timeout | undefined;
  private followTimer: NodeJS.Timeout | undefined;
  private following: Promise<void> | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private hintQueued = false;
  private stopped = false;

  constructor(private readonly db: Db, private readonly jobs: JobCoordinator, private readonly sessions: SessionRegistry,
    private readonly log: Logger, private readonly pollMs = 1000,
    /**
     * Other work for hosts on other replicas, delivered on the same polls and
     * hints: agent upgrades of rollouts (rollouts/upgrade-mailbox.ts), bundle
     * prefetch stages (bundles/prefetch.ts).
     */
    private readonly also: ReadonlyArray<{ deliver(): Promise<void> }> = []) {}

  /** Wakes the other replicas now (coalesced: one NOTIFY per turn of the event loop); their poll delivers anyway. */
  hint(): void {
    if (!(this.db instanceof PgDb) || this.hintQueued || this.stopped) return;
    const pgdb = this.db;
    this.hintQueued = true;
    setImmediate(() => {
      this.hintQueued = false;
      pgdb.notify(CHANNEL).catch((err: Error) => this.log.warn({ err: err.message }, 'wake-up hint not sent; the poll delivers'));
    });
  }

  start(): void {
    this.timer = setInterval(() => this.wake(), this.pollMs);
    this.timer.unref();
    if (this.db instanceof PgDb) {
      const pgdb = this.db;
      this.unlisten = pgdb.listen(CHANNEL, () => this.wake());
      // Coalesced: all the remote starts (and cancels) of one scheduling pass share one NOTIFY.
      this.jobs.sequencer.onRemoteWork = () => this.hint();
    }
    this.followTimer = setInterval(() => {
      if (this.following || this.stopped) return;
      this.following = this.jobs.sequencer.follow()
        .catch((err: Error) => this.log.warn({ err: err.message }, 'following jobs on other replicas failed; retrying'))
        .finally(() => { this.following = undefined; });
    }, FOLLOW_MS);
    this.followTimer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.followTimer);
    await this.unlisten?.();
    await Promise.all([this.running, this.following]);
  }

  /** One look now (or right after the one running). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.deliver()
      .catch((err: Error) => this.log.warn({ err: err.message }, 'job mailbox poll failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  /** Delivers every dispatched start, every recorded cancel and the other work (`also`) for agents connected here. */
  private async deliver(): Promise<void> {
    if (this.sessions.size === 0) return;
    const rows = await this.db.all<{ host_job_id: string; agent_id: string }>(
      "SELECT host_job_id, agent_id FROM job_hosts WHERE state = 'dispatched'");
    for (const r of rows) {
      if (!this.sessions.get(r.agent_id)) continue;
      if (await this.jobs.sequencer.deliver(r.host_job_id)) this.log.debug({ job: r.host_job_id, agent: r.agent_id }, 'start delivered from the mailbox');
    }
    const cancels = await this.db.all<{ host_job_id: string; agent_id: string; cancel_reason: string }>(
      "SELECT host_job_id, agent_id, cancel_reason FROM job_hosts WHERE cancel_reason IS NOT NULL AND state IN ('dispatched', 'running')");
    for (const r of cancels) {
      if (!this.sessions.get(r.agent_id)) continue;
      if (await this.jobs.sequencer.deliverCancel(r.host_job_id, r.cancel_reason)) this.log.debug({ job: r.host_job_id, agent: r.agent_id }, 'cancel delivered from the mailbox');
    }
    for (const a of this.also) await a.deliver();
  }
}
