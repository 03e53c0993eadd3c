import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { PrefetchCoordinator } from '../bundles/prefetch.js';
import type { JobCoordinator } from '../jobs/job-coordinator.js';
import type { PlanStore } from '../plans/plan-store.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { AgentStore } from '../store/agents.js';
import type { AuditLog } from '../store/audit.js';
import { ActiveRollout, type DispatchInfo } from './active-rollout.js';
import type { Clock, Timer } from './clock.js';
import { buildRollout, dispatchInfo } from './create.js';
import { decide, type World } from './decide.js';
import { HostJobs } from './host-jobs.js';
import { ROLLOUT_TERMINAL } from './model.js';
import { PrefetchPhase } from './prefetch-phase.js';
import { RolloutMoves } from './rollout-moves.js';
import type { RolloutEventRecord, RolloutStore, StoredRollout } from './rollout-store.js';
import { agentArch, UpgradeHosts } from './upgrade-hosts.js';
import type { AgentUpgradeRecord, AgentUpgradeStore } from '../store/agent-upgrades.js';

/** Watchers get every persisted event, and bare pings (no event) when step progress changed. */
export type RolloutListener = (rolloutId: string, ev?: RolloutEventRecord) => void;

const TICK_MS = 1000;

/**
 * What the scheduler works with. Narrow on purpose: it owns rollout state
 * and reaches the rest of the controller only through these.
 */
export interface SchedulerDeps {
  store: RolloutStore;
  sessions: SessionRegistry;
  jobs: JobCoordinator;
  prefetch: Pick<PrefetchCoordinator, 'run'>;
  plans: Pick<PlanStore, 'require' | 'byId' | 'jobBundles'>;
  bundles: Pick<BundleStore, 'lease' | 'byId' | 'list'>;
  /** Site relays keep an unfinished rollout's bundles (relays/relay-pins.ts); absent in unit tests. */
  relayPins?: { pin(bundleId: string): () => void };
  agents: Pick<AgentStore, 'list' | 'get'>;
  /** Agent self-upgrade outcomes, for rollouts of `ferry agents upgrade` (upgrade-hosts.ts). */
  agentUpgrades: Pick<AgentUpgradeStore, 'forUpgradePrefix'> & { onChange?: (r: AgentUpgradeRecord) => void };
  audit: Pick<AuditLog, 'record'>;
  log: Logger;
  clock: Clock;
  /** With several replicas: agents with a session on any replica (ha/presence.ts); without, only this one's sessions count. */
  presence?: { connected(): Promise<Set<string>> };
}

/**
 * Drives every unfinished rollout from the store. One loop decides for all
 * rollouts (decide.ts) and applies the actions; host results, operator
 * actions and ticks are serialised, so no two changes to rollouts
 * interleave across an await. A host is started only when no other plan job
 * (of any rollout or `ferry run`) is unfinished on it, so two rollouts never
 * interleave on a host. After a controller restart every unfinished rollout
 * is reloaded and its running hosts re-attached to their stored jobs: their
 * results arrive when the agents reconnect; nothing is re-run. The hosts'
 * jobs are sent and finished in host-jobs.ts, the rollout's own state
 * changes (waves, budget, abort) made in rollout-moves.ts.
 */
export class RolloutScheduler {
  readonly store: RolloutStore;
  readonly clock: Clock;
  private readonly active = new Map<string, ActiveRollout>();
  private readonly listeners = new Set<RolloutListener>();
  /** Prefetch phases running now; stop() waits for them. */
  private readonly phases = new Set<Promise<void>>();
  private chain: Promise<unknown> = Promise.resolve();
  private since: number;
  /** Agents whose session dropped while this controller ran, and when. */
  private readonly downSince = new Map<string, number>();
  private timer: Timer | undefined;
  private kicked = false;
  // Not running until start(): a replica never elected must refuse changes (requireRunning) like a deposed one.
  private stopped = true;
  private unsubscribe: (() => void) | undefined;
  private readonly hostJobs: HostJobs;
  private readonly moves: RolloutMoves;

  constructor(readonly deps: SchedulerDeps) {
    this.store = deps.store;
    this.clock = deps.clock;
    this.since = deps.clock.now();
    const upgrades = new UpgradeHosts(deps.sessions, deps.agentUpgrades, {
      arch: async (id) => { const a = await deps.agents.get(id); return a && agentArch(a); },
    });
    this.hostJobs = new HostJobs({
      jobs: deps.jobs, upgrades, store: deps.store, log: deps.log, clock: deps.clock,
      serial: (fn) => this.serial(fn), emit: (id) => this.emit(id), kick: () => this.kick(),
      checkBudget: (a, w) => this.checkBudget(a, w), drives: (a) => this.active.get(a.id) === a,
    });
    this.moves = new RolloutMoves({ store: deps.store, clock: deps.clock, hostJobs: this.hostJobs, emit: (id) => this.emit(id), kick: () => this.kick() });
    // An outcome recorded on this replica: read it on the next pass rather than a second later.
    deps.agentUpgrades.onChange = () => this.kick();
  }

  /** Runs `fn` after every change queued before it; failures are logged and do not stop the queue. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch((err: unknown) => this.deps.log.error({ err }, 'rollout scheduler step failed'));
    return next;
  }

  /**
   * Reloads unfinished rollouts and starts the loop. Call before agents can
   * connect. With several replicas it runs on the lease holder only: start()
   * when this replica is elected, stop() when it is deposed; a later start()
   * (elected again) begins from the store as a restart would.
   */
  async start(): Promise<void> {
    this.stopped = false;
    this.since = this.clock.now();
    for (const id of await this.store.unfinishedIds()) {
      await this.activate(id).catch((err: unknown) => this.deps.log.error({ err, rollout: id }, 'cannot resume rollout'));
    }
    this.unsubscribe = this.deps.sessions.onChange((agentId, up) => {
      if (up) {
        this.downSince.delete(agentId);
        this.hostJobs.agentUp([...this.active.values()], agentId);
      } else {
        this.downSince.set(agentId, this.clock.now());
        for (const a of this.active.values()) a.prefetch?.offline(agentId);
      }
      this.kick();
    });
    this.timer = this.clock.every(TICK_MS, () => this.kick());
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const a of this.active.values()) a.prefetch?.stop();
    await Promise.all(this.phases);
    await this.chain.catch(() => undefined);
    // Forgotten only once queued changes are done: a later start() reloads every rollout from the store.
    for (const a of this.active.values()) a.release();
    this.active.clear();
  }

  /**
   * Refuses an operator change while this replica does not run the
   * scheduler (another replica holds the lease, or this one is stopping):
   * the change must be made where the rollouts are driven. Reached when
   * the lease moved during the call; otherwise a replica without the
   * scheduler records the change for it (rollout-commands.ts).
   */
  requireRunning(): void {
    if (this.stopped) {
      throw new FerryError(ErrorCode.Unavailable, 'this controller replica is not running the rollout scheduler (another replica holds the scheduler lease)',
        'ask again: a replica that does not run the scheduler passes the change to the one that does (docs/ha.md); `ferry controller status` names it');
    }
  }

  isStopped(): boolean {
    return this.stopped;
  }

  subscribe(l: RolloutListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  emit(rolloutId: string, ev?: RolloutEventRecord): void {
    for (const l of this.listeners) l(rolloutId, ev);
  }

  /** The live rollout, if the scheduler is driving it. */
  get(id: string): ActiveRollout | undefined {
    return this.active.get(id);
  }

  /** Asks for a scheduling pass soon (coalesced). */
  kick(): void {
    if (this.kicked || this.stopped) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      void this.serial(() => this.tick());
    });
  }

  /** One scheduling pass now, after every change queued before it (an operator action's effect is visible when this resolves). */
  settle(): Promise<void> {
    return this.serial(() => this.tick());
  }

  /** Validates and stores a new rollout, then starts driving it. */
  async create(specText: string, file: string, who: string): Promise<StoredRollout> {
    this.requireRunning();
    const { stored, dispatch } = await buildRollout(this.deps, specText, file, who);
    if (!dispatch.upgrade) await this.deps.jobs.createJob(stored.jobId, { planId: stored.planId, signed: dispatch.signed, params: dispatch.params, bundles: dispatch.bundles, check: false, createdBy: who });
    await this.store.insert(stored);
    await this.deps.audit.record(who, dispatch.upgrade ? 'agents.upgrade' : 'rollout.create', stored.model.id,
      { name: stored.name, plan: stored.planName, hosts: stored.model.hosts.length, waves: stored.model.waveSizes, ...(dispatch.upgrade ? { version: dispatch.upgrade.version } : {}) });
    await this.serial(async () => {
      const a = await this.activate(stored.model.id, stored, dispatch);
      await a.event('created', `${stored.model.hosts.length} hosts in ${stored.model.waveSizes.length} waves (${stored.model.waveSizes.join(', ')}) by ${who}`);
    });
    this.kick();
    return stored;
  }

  /** Starts driving a stored rollout: leases, re-attached host jobs, the prefetch phase if it was in it. */
  async activate(id: string, loaded?: StoredRollout, info?: DispatchInfo): Promise<ActiveRollout> {
    const existing = this.active.get(id);
    if (existing) return existing;
    const stored = loaded ?? (await this.store.load(id));
    if (!stored) throw new FerryError(ErrorCode.NotFound, `rollout ${id} is not in the store`, 'list rollouts with `ferry rollout ls`');
    const dispatch = info ?? (await dispatchInfo(this.deps, stored));
    const a = new ActiveRollout(stored, dispatch, await this.store.lastSeq(id), this.store, (ev) => this.emit(ev.rolloutId, ev), this.clock);
    for (const b of stored.bundles) {
      a.hold(this.deps.bundles.lease(b.bundleId));
      if (this.deps.relayPins) a.hold(this.deps.relayPins.pin(b.bundleId));
    }
    this.active.set(id, a);
    await this.hostJobs.reattach(a);
    // An upgrade takes no prefetch (create.ts), and an abort waits for its hosts rather than cancelling them (host-jobs.ts).
    if (dispatch.upgrade) return a;
    if (stored.model.state === 'prefetching') this.startPrefetch(a);
    if (stored.model.state === 'aborting') this.hostJobs.cancel(a);
    return a;
  }

  /** Starts the rollout's prefetch phase; the scheduler keeps it until it ends (stop() awaits it). */
  private startPrefetch(a: ActiveRollout): void {
    const phase = new PrefetchPhase({
      prefetch: this.deps.prefetch, bundles: this.deps.bundles, log: this.deps.log,
      serial: (fn) => this.serial(fn), checkBudget: (x, w) => this.checkBudget(x, w), emit: (id) => this.emit(id),
    }, a);
    a.prefetch = phase;
    const running: Promise<void> = phase.run()
      .catch((err: unknown) => this.deps.log.error({ err, rollout: a.id }, 'rollout prefetch phase failed'))
      .finally(() => {
        this.phases.delete(running);
        this.kick();
      });
    this.phases.add(running);
  }

  /** After a failure: over budget → the strategy's onFailure (rollout-moves.ts). */
  checkBudget(a: ActiveRollout, wave: number): Promise<void> {
    return this.moves.checkBudget(a, wave);
  }

  /** Abort: hosts not started are cancelled, running hosts' jobs are cancelled (rollout-moves.ts). */
  abortNow(a: ActiveRollout, reason: string): Promise<void> {
    return this.moves.abortNow(a, reason);
  }

  /** Wave `w` begins: its hosts become eligible now (rollout-moves.ts). */
  beginWave(a: ActiveRollout, w: number, cause: 'begin-wave' | 'approve'): Promise<void> {
    return this.moves.beginWave(a, w, cause);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    await this.hostJobs.collect([...this.active.values()]);
    const needBusy = [...this.active.values()].some((a) => a.model.state === 'running' && !a.model.paused);
    const busy = needBusy ? await this.deps.jobs.busyAgents() : new Map<string, string>();
    // A host mid-upgrade is busy for every other rollout (and an upgrade waits for a plan job, through the map above).
    if (needBusy) for (const a of this.active.values()) if (a.dispatch.upgrade) for (const h of a.model.hosts) if (h.state === 'running' && h.hostJobId) busy.set(h.agentId, h.hostJobId);
    const elsewhere = this.deps.presence && this.active.size > 0 ? await this.deps.presence.connected() : undefined;
    for (const a of [...this.active.values()]) {
      for (let pass = 0; pass < 50; pass++) {
        const w: World = {
          now: this.clock.now(),
          connected: (id) => Boolean(this.deps.sessions.get(id)) || Boolean(elsewhere?.has(id)),
          offlineSince: (id) => this.downSince.get(id) ?? this.since,
          busy: (id) => {
            const job = busy.get(id);
            if (!job) return undefined;
            const owner = /^j-(ro-[0-9a-f]+)-/.exec(job)?.[1];
            return owner ? `waiting: rollout ${owner} is running on this host` : `waiting: job ${job} is running on this host`;
          },
        };
        const actions = decide(a.model, w);
        if (actions.length === 0 || !(await this.moves.apply(a, actions, busy))) break;
      }
      if (ROLLOUT_TERMINAL.has(a.model.state) && !a.model.hosts.some((h) => h.state === 'running')) {
        a.release();
        this.active.delete(a.id);
      }
    }
  }
}
