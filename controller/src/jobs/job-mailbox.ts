import type { Logger } from '../../../common/src/log.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { Db } from '../store/db.js';
import { PgDb } from '../store/pg-db.js';
import type { JobCoordinator } from './job-coordinator.js';

const CHANNEL = 'ferry_jobs';

/**
 * Work reaches the host wherever its session is. A plan job's start is a
 * row in job_hosts (state dispatched) whatever replica made it; the replica
 * holding the agent's session delivers it. Each replica looks for
 * dispatched rows of agents connected to it on a poll (every `pollMs`) and
 * at once on a PostgreSQL NOTIFY, which the replica that recorded the start
 * sends when the host is not connected to it (one hint per batch of
 * starts). The hint may be lost (NOTIFY is not replayed); the poll is what
 * guarantees delivery. The agent's results travel back through the store:
 * the session replica writes them to job_events and job_hosts, where the
 * scheduler (on the lease holder) and `ferry jobs logs` read them.
 */
export class JobMailbox {
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private hintQueued = false;
  private stopped = false;

  constructor(private readonly db: Db, private readonly jobs: JobCoordinator, private readonly sessions: SessionRegistry,
    private readonly log: Logger, private readonly pollMs = 1000) {}

  start(): void {
    this.timer = setInterval(() => this.wake(), this.pollMs);
    this.timer.unref();
    if (this.db instanceof PgDb) {
      const pgdb = this.db;
      this.unlisten = pgdb.listen(CHANNEL, () => this.wake());
      // Coalesced: all the remote starts of one scheduling pass share one NOTIFY.
      this.jobs.onRemoteStart = () => {
        if (this.hintQueued) return;
        this.hintQueued = true;
        setImmediate(() => {
          this.hintQueued = false;
          pgdb.notify(CHANNEL).catch((err: Error) => this.log.warn({ err: err.message }, 'job wake-up hint not sent; the poll delivers'));
        });
      };
    }
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.unlisten?.();
    await this.running;
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

  /** Delivers every dispatched start of an agent connected here. One indexed query; nothing more when none is waiting. */
  private async deliver(): Promise<void> {
    if (this.sessions.size === 0) return;
    const rows = await this.db.all<{ host_job_id: string; agent_id: string }>(
      "SELECT host_job_id, agent_id FROM job_hosts WHERE state = 'dispatched'");
    for (const r of rows) {
      if (!this.sessions.get(r.agent_id)) continue;
      if (await this.jobs.sequencer.deliver(r.host_job_id)) this.log.debug({ job: r.host_job_id, agent: r.agent_id }, 'start delivered from the mailbox');
    }
  }
}
