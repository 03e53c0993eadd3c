import type { Logger } from '../../../common/src/log.js';
import type { Clock, Timer } from '../rollouts/clock.js';
import type { Fence } from './fenced-db.js';
import type { Lease } from './lease.js';

export interface LeadershipOptions {
  lease: Lease;
  name: string;
  owner: string;
  ttlMs: number;
  clock: Clock;
  log: Logger;
  /** Singleton work starts (this replica now holds the lease at `epoch`). */
  onElected(epoch: number): Promise<void>;
  /** Singleton work stops (the lease was lost, or the replica is stopping). */
  onDeposed(reason: string): Promise<void>;
}

/**
 * Keeps trying to hold one lease, and runs singleton work exactly while it
 * does. Every `ttl/5` the holder renews and the others try to take it over,
 * so a dead holder is replaced at most a lease time plus one try after its
 * last renewal. The holder also keeps its own deadline: a renewal that has
 * not succeeded within the lease time (a hung connection, the database
 * away) stops its work locally, without waiting for the database to say so.
 * Elections and depositions run one at a time, in order.
 */
export class Leadership {
  private epoch: number | undefined;
  private timer: Timer | undefined;
  private deadline: Timer | undefined;
  private busy = false;
  private stopped = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: LeadershipOptions) {}

  /** How often the lease is renewed or tried. */
  get intervalMs(): number {
    return Math.max(50, Math.floor(this.o.ttlMs / 5));
  }

  /** The fence for writes made now, or undefined when this replica does not hold the lease. */
  fence(): Fence | undefined {
    return this.epoch === undefined ? undefined : { name: this.o.name, owner: this.o.owner, epoch: this.epoch };
  }

  isLeader(): boolean {
    return this.epoch !== undefined;
  }

  /** First try now (a lone controller is the holder before it serves anyone), then on the interval. */
  async start(): Promise<void> {
    await this.step();
    await this.chain;
    if (!this.stopped) this.timer = this.o.clock.every(this.intervalMs, () => void this.step());
  }

  /** Stops trying; the holder stops its work and releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    const held = this.epoch;
    await this.transition(undefined, 'this replica is stopping');
    if (held !== undefined) await this.o.lease.release(held).catch((err: Error) => this.o.log.warn({ err: err.message }, 'could not release the lease; it expires by itself'));
  }

  /** One renewal or takeover attempt; ignored while the previous one is still waiting for the database. */
  async step(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    const started = this.o.clock.now();
    try {
      const epoch = await this.o.lease.acquire();
      if (this.stopped) return;
      if (epoch === undefined) {
        if (this.epoch !== undefined) await this.transition(undefined, 'another replica holds the lease');
        return;
      }
      // Held until `ttl` after the attempt began (not after the answer came: the answer may have been slow).
      this.deadline?.cancel();
      this.deadline = this.o.clock.after(Math.max(0, started + this.o.ttlMs - this.o.clock.now()),
        () => void this.transition(undefined, `the lease was not renewed within ${this.o.ttlMs} ms`));
      if (this.epoch !== epoch) await this.transition(epoch, 'lease acquired');
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'lease renewal failed');
    } finally {
      this.busy = false;
    }
  }

  /** Moves to holding `epoch` (or nothing), stopping the old term's work before starting the new. */
  private transition(epoch: number | undefined, reason: string): Promise<void> {
    const next = this.chain.then(async () => {
      if (this.epoch === epoch) return;
      const was = this.epoch;
      if (was !== undefined) {
        this.epoch = undefined;
        if (epoch === undefined) this.deadline?.cancel();
        this.o.log.warn({ epoch: was, reason }, 'no longer the scheduler: singleton work stops');
        await this.o.onDeposed(reason);
      }
      if (epoch !== undefined && !this.stopped) {
        this.epoch = epoch;
        this.o.log.info({ epoch, reason }, 'this replica is the scheduler: singleton work starts');
        await this.o.onElected(epoch);
      }
    });
    this.chain = next.catch((err: unknown) => this.o.log.error({ err }, 'leadership change failed'));
    return next;
  }
}
