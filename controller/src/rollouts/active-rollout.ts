import type { JobBundle, SignedPlan } from '../../../common/src/gen/ferry/v1/session.js';
import type { Clock } from './clock.js';
import type { UpgradeSpec } from './spec.js';
import type { HostModel, HostState, RolloutModel, RolloutState } from './model.js';
import type { RolloutEventRecord, RolloutStore, StoredRollout } from './rollout-store.js';
import { hostTransition, rolloutTransition, type HostCause, type RolloutCause } from './transitions.js';

/** What a rollout sends to each host: the signed plan as of create time, params, bundles. */
export interface DispatchInfo {
  signed: SignedPlan;
  params: Record<string, string>;
  bundles: JobBundle[];
  /** Set for an agent upgrade: hosts are sent this release instead of a plan job (upgrade-hosts.ts). */
  upgrade?: UpgradeSpec;
}

export type EventListener = (ev: RolloutEventRecord) => void;

/** A host change that is not a state change (messages, timers, job ids). */
export type HostPatch = Partial<Omit<HostModel, 'state'>>;

/** Rollout fields that change along with its state. */
export type RolloutPatch = Partial<Pick<RolloutModel, 'pauseReason' | 'gateUntil' | 'currentWave'>>;

/** The prefetch phase as the rollout sees it: it can be stopped, and told that a host went offline. */
export interface RunningPhase {
  stop(): void;
  offline(agentId: string): void;
}

/**
 * A rollout the scheduler is driving: its model in memory (the scheduler
 * decides from it without reading the store) written through to the store
 * on every change, with one event per change. States change only through
 * `moveHosts` and `moveTo`, which check the transition tables.
 */
export class ActiveRollout {
  /** Set while the prefetch phase runs, so abort can stop it. */
  prefetch: RunningPhase | null = null;
  private readonly releases: Array<() => void> = [];

  constructor(
    readonly stored: StoredRollout,
    readonly dispatch: DispatchInfo,
    private seq: number,
    private readonly store: RolloutStore,
    private readonly emit: EventListener,
    readonly clock: Clock,
  ) {}

  get model(): RolloutModel {
    return this.stored.model;
  }

  get id(): string {
    return this.stored.model.id;
  }

  host(agentId: string): HostModel | undefined {
    return this.stored.model.hosts.find((h) => h.agentId === agentId);
  }

  /** Holds resources (bundle leases) until the rollout ends. */
  hold(release: () => void): void {
    this.releases.push(release);
  }

  release(): void {
    for (const r of this.releases.splice(0)) r();
    this.prefetch?.stop();
  }

  /** Appends an event to the store and tells watchers. */
  async event(kind: string, message = '', host?: HostModel, state = host?.state ?? this.model.state): Promise<void> {
    const ev = this.record(kind, message, host, state);
    await this.committed([ev], this.store.appendEvent(ev));
  }

  /** Tells watchers of `events` once `write` committed; a refused write gives their numbers back (changes are serialized, so they are the last taken). */
  private async committed(events: RolloutEventRecord[], write: Promise<void>): Promise<void> {
    try {
      await write;
    } catch (err) {
      this.seq -= events.length;
      throw err;
    }
    for (const ev of events) this.emit(ev);
  }

  /** The next event, numbered; stored by the caller together with the change it records. */
  private record(kind: string, message = '', host?: HostModel, state = host?.state ?? this.model.state): RolloutEventRecord {
    return { rolloutId: this.id, seq: ++this.seq, at: this.clock.now(), kind, agentId: host?.agentId ?? '', hostname: host?.hostname ?? '', state, message };
  }

  /** Saves hosts with one `host` event each, in one transaction, then tells watchers. */
  private async saveHosts(hosts: HostModel[], quiet = false): Promise<void> {
    const events = quiet ? [] : hosts.map((h) => this.record('host', h.message, h));
    await this.committed(events, this.store.saveHosts(this.id, hosts, events));
  }

  /**
   * Moves hosts to state `to` (checked: every host must be allowed to make
   * that move, or none moves), applies `patch`, saves them and records one
   * `host` event each.
   */
  async moveHosts(hosts: HostModel[], cause: HostCause, to: HostState, patch: HostPatch = {}): Promise<void> {
    // Check all first: a refused move leaves every host as it was.
    for (const h of hosts) hostTransition(this.id, { ...h }, cause, to);
    for (const h of hosts) {
      hostTransition(this.id, h, cause, to);
      Object.assign(h, patch);
    }
    await this.saveHosts(hosts);
  }

  /** Changes hosts without changing their state, saves them, and records one `host` event each (unless `quiet`). */
  async updateHosts(hosts: HostModel[], patch: HostPatch, quiet = false): Promise<void> {
    for (const h of hosts) Object.assign(h, patch);
    await this.saveHosts(hosts, quiet);
  }

  /**
   * Moves the rollout to `to` (checked first: a refused move changes
   * nothing), applies `patch`, saves it and records an event of `kind`.
   */
  async moveTo(cause: RolloutCause, to: RolloutState, message: string, kind = 'rollout', patch: RolloutPatch = {}): Promise<void> {
    rolloutTransition(this.model, cause, to);
    Object.assign(this.model, patch);
    await this.save(message, kind);
  }

  /** Saves the rollout row and records an event `kind` with `message`. */
  async save(message = '', kind = 'rollout'): Promise<void> {
    const m = this.model;
    const terminal = m.state === 'succeeded' || m.state === 'failed' || m.state === 'aborted';
    const now = this.clock.now();
    this.stored.finishedAt = terminal ? (this.stored.finishedAt ?? now) : null;
    this.stored.updatedAt = now;
    const ev = this.record(kind, message);
    await this.committed([ev], this.store.saveRollout(m, this.stored.finishedAt, now, [ev]));
  }
}
