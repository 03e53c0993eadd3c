import type { JobBundle, SignedPlan } from '../../../common/src/gen/ferry/v1/session.js';
import type { HostModel, RolloutModel } from './model.js';
import type { RolloutEventRecord, RolloutStore, StoredRollout } from './rollout-store.js';

/** What a rollout sends to each host: the signed plan as of create time, params, bundles. */
export interface DispatchInfo {
  signed: SignedPlan;
  params: Record<string, string>;
  bundles: JobBundle[];
}

export type EventListener = (ev: RolloutEventRecord) => void;

/**
 * A rollout the scheduler is driving: its model in memory (the scheduler
 * decides from it without reading the store) written through to the store
 * on every change, with one event per change.
 */
export class ActiveRollout {
  /** Set while the prefetch phase runs, so abort can stop it. */
  prefetch: AbortController | null = null;
  private readonly releases: Array<() => void> = [];

  constructor(
    readonly stored: StoredRollout,
    readonly dispatch: DispatchInfo,
    private seq: number,
    private readonly store: RolloutStore,
    private readonly emit: EventListener,
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
    this.prefetch?.abort();
  }

  /** Appends an event to the store and tells watchers. */
  async event(kind: string, message = '', host?: HostModel, state = host?.state ?? this.model.state): Promise<void> {
    const ev: RolloutEventRecord = {
      rolloutId: this.id, seq: ++this.seq, at: Date.now(), kind, agentId: host?.agentId ?? '', hostname: host?.hostname ?? '', state, message,
    };
    await this.store.appendEvent(ev);
    this.emit(ev);
  }

  /** Changes hosts, saves them, and records one `host` event each (unless `quiet`, for messages only). */
  async updateHosts(hosts: HostModel[], patch: Partial<HostModel>, quiet = false): Promise<void> {
    for (const h of hosts) Object.assign(h, patch);
    await this.store.saveHosts(this.id, hosts);
    if (!quiet) for (const h of hosts) await this.event('host', h.message, h);
  }

  /** Saves the rollout row and records a `rollout` event with `message`. */
  async save(message = '', kind = 'rollout'): Promise<void> {
    const m = this.model;
    const terminal = m.state === 'succeeded' || m.state === 'failed' || m.state === 'aborted';
    this.stored.finishedAt = terminal ? (this.stored.finishedAt ?? Date.now()) : null;
    this.stored.updatedAt = Date.now();
    await this.store.saveRollout(m, this.stored.finishedAt);
    await this.event(kind, message);
  }
}
