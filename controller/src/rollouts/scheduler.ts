import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { JobResult } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { PrefetchCoordinator } from '../bundles/prefetch.js';
import type { HostJobHooks, JobCoordinator } from '../jobs/job-coordinator.js';
import type { PlanStore } from '../plans/plan-store.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { AgentStore } from '../store/agents.js';
import type { AuditLog } from '../store/audit.js';
import { ActiveRollout, type DispatchInfo } from './active-rollout.js';
import { budgetExceeded } from './budget.js';
import type { Clock, Timer } from './clock.js';
import { buildRollout, dispatchInfo } from './create.js';
import { decide, type Action, type World } from './decide.js';
import { HOST_TERMINAL, ROLLOUT_TERMINAL, type HostModel } from './model.js';
import { PrefetchPhase } from './prefetch-phase.js';
import type { RolloutEventRecord, RolloutStore, StoredRollout } from './rollout-store.js';
import { rolloutTransition, setPaused } from './transitions.js';
import { agentArch, UpgradeHosts, upgradeResult } from './upgrade-hosts.js';
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
 * results arrive when the agents reconnect; nothing is re-run.
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
  private readonly upgrades: UpgradeHosts;

  constructor(readonly deps: SchedulerDeps) {
    this.store = deps.store;
    this.clock = deps.clock;
    this.since = deps.clock.now();
    this.upgrades = new UpgradeHosts(deps.sessions, deps.agentUpgrades, {
      arch: async (id) => { const a = await deps.agents.get(id); return a && agentArch(a); },
    });
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
        this.onAgentUp(agentId);
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
    // An upgrade's running hosts are finished from agent_upgrades by the next pass (collectResults), or sent again when they connect.
    if (dispatch.upgrade) {
      for (const h of stored.model.hosts.filter((x) => x.state === 'running' && x.hostJobId)) await this.upgrades.send(dispatch, dispatch.upgrade, h);
      return a;
    }
    for (const h of stored.model.hosts.filter((x) => x.state === 'running' && x.hostJobId)) {
      const start = this.deps.jobs.jobStart(h.hostJobId!, { ...dispatch, check: false });
      const row = await this.deps.jobs.attach(h.hostJobId!, h, start, this.hooks(a, h));
      // Marked running here but no job row: the controller stopped between the
      // two writes, so the start was never sent. Sending it now is its first run.
      if (!row) await this.deps.jobs.startHost(stored.jobId, h.hostJobId!, { ...dispatch, check: false }, h, this.hooks(a, h));
      else if (['succeeded', 'failed', 'cancelled', 'lost'].includes(row.state)) await this.hostFinished(a, h.agentId, h.hostJobId!, row.state, row.message);
    }
    if (stored.model.state === 'prefetching') this.startPrefetch(a);
    if (stored.model.state === 'aborting') for (const h of stored.model.hosts) if (h.state === 'running') this.deps.jobs.cancel(h.hostJobId!, h.agentId);
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

  private hooks(a: ActiveRollout, h: HostModel): HostJobHooks {
    const hostJobId = h.hostJobId!;
    return {
      sink: (ev) => { if (ev.event?.$case === 'step') this.emit(a.id); },
      done: (r: JobResult | undefined) => {
        const status = r?.status ?? 'failed';
        // Name the failing step unless the agent's message already does.
        const message = status === 'failed' && r?.failedStep && !r.message.includes(r.failedStep) ? `step ${r.failedStep}: ${r.message}` : (r?.message ?? '');
        void this.serial(() => this.hostFinished(a, h.agentId, hostJobId, status, message));
      },
    };
  }

  /** A host's job ended (or was found ended after a restart); stale attempts are ignored. */
  private async hostFinished(a: ActiveRollout, agentId: string, hostJobId: string, status: string, message: string): Promise<void> {
    // A result for a rollout of an earlier term (this replica was deposed and elected again) is the reloaded copy's to apply.
    if (this.active.get(a.id) !== a) return;
    const h = a.host(agentId);
    if (!h || h.hostJobId !== hostJobId || h.state !== 'running') return;
    const state = status === 'succeeded' ? 'succeeded' : status === 'cancelled' ? 'cancelled' : 'failed';
    await a.moveHosts([h], 'result', state, { finishedAt: this.clock.now(), message: status === 'lost' ? `lost: ${message}` : message });
    if (state === 'failed') await this.checkBudget(a, h.wave);
    this.kick();
  }

  /** After a failure: over budget → the strategy's onFailure. */
  async checkBudget(a: ActiveRollout, wave: number): Promise<void> {
    const m = a.model;
    if (ROLLOUT_TERMINAL.has(m.state) || m.state === 'aborting') return;
    const failed = m.hosts.filter((h) => h.state === 'failed');
    const reason = budgetExceeded(m.strategy.errorBudget, {
      wave, failedInWave: failed.filter((h) => h.wave === wave).length, waveSize: m.waveSizes[wave] ?? 1, failedTotal: failed.length, total: m.hosts.length,
    });
    if (!reason) return;
    await a.event('budget-exceeded', `${reason}; onFailure: ${m.strategy.onFailure}`);
    if (m.strategy.onFailure === 'pause' && !m.paused) {
      setPaused(m, true, reason);
      await a.save(reason, 'paused');
    } else if (m.strategy.onFailure === 'abort') {
      await this.abortNow(a, reason);
    }
  }

  /** Abort: hosts not started are cancelled, running hosts' jobs are cancelled (the agent kills the step). */
  async abortNow(a: ActiveRollout, reason: string): Promise<void> {
    const m = a.model;
    // Checked before any host changes: an abort the diagram refuses changes nothing.
    rolloutTransition({ ...m }, 'abort', 'aborting');
    a.prefetch?.stop();
    const waiting = m.hosts.filter((h) => h.state === 'pending' || h.state === 'ready' || h.state === 'prefetching');
    await a.moveHosts(waiting, 'abort', 'cancelled', { message: 'not started: the rollout was aborted', finishedAt: this.clock.now() });
    // An agent upgrade in flight is not cancelled: the host commits or rolls back by itself, and the abort waits for it.
    if (!a.dispatch.upgrade) {
      for (const h of m.hosts) if (h.state === 'running') this.deps.jobs.cancel(h.hostJobId!, h.agentId);
    } else {
      // ...but one the host never acknowledged (not connected here, or an agent too old to know AgentUpgrade) is not waited for.
      const outcomes = await this.upgrades.outcomes(a.stored.jobId);
      const silent = m.hosts.filter((h) => h.state === 'running' && h.hostJobId && !outcomes.has(h.hostJobId));
      await a.moveHosts(silent, 'abandon', 'cancelled', { finishedAt: this.clock.now(), message: 'the rollout was aborted before the host acknowledged the upgrade' });
    }
    await a.moveTo('abort', 'aborting', reason, 'aborting', { pauseReason: reason, gateUntil: null });
    this.kick();
  }

  /**
   * Wave `w` begins (`cause`: the previous wave was done, its wait ended, or
   * an operator approved it): its hosts become eligible now (the offline
   * timeout counts from here).
   */
  async beginWave(a: ActiveRollout, w: number, cause: 'begin-wave' | 'approve'): Promise<void> {
    const m = a.model;
    const now = this.clock.now();
    rolloutTransition({ ...m }, cause, 'running');
    if (m.currentWave >= 0) await this.store.waveFinished(a.id, m.currentWave, now);
    await a.updateHosts(m.hosts.filter((h) => h.wave === w && !HOST_TERMINAL.has(h.state)), { eligibleAt: now }, true);
    await this.store.waveStarted(a.id, w, now);
    await a.moveTo(cause, 'running', `wave ${w + 1} of ${m.waveSizes.length} started: ${m.waveSizes[w]} hosts`, 'wave-started', { currentWave: w, gateUntil: null });
  }

  private onAgentUp(agentId: string): void {
    for (const a of this.active.values()) {
      // An upgrade not yet answered (the host was offline, or is back on either version): send it again; the agent dedupes by id.
      const u = a.dispatch.upgrade;
      const uh = u && a.host(agentId);
      if (u && uh?.state === 'running') void this.serial(() => this.upgrades.send(a.dispatch, u, uh));
    }
    // An abort's cancel could not reach a host that was offline; send it again now.
    for (const a of this.active.values()) {
      if (a.dispatch.upgrade) continue;
      if (a.model.state !== 'aborting') continue;
      const h = a.host(agentId);
      if (h?.state === 'running') this.deps.jobs.cancel(h.hostJobId!, agentId);
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    await this.collectResults();
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
        if (actions.length === 0 || !(await this.apply(a, actions, busy))) break;
      }
      if (ROLLOUT_TERMINAL.has(a.model.state) && !a.model.hosts.some((h) => h.state === 'running')) {
        a.release();
        this.active.delete(a.id);
      }
    }
  }

  /**
   * Results recorded by another replica: a host's session (and so its job
   * messages) may be on any replica, which records them in job_hosts; only
   * the replica holding the session calls the job's hooks. The scheduler
   * reads the job rows of its running hosts once per pass and finishes
   * those that ended. One query per rollout with running hosts per pass.
   */
  private async collectResults(): Promise<void> {
    for (const a of [...this.active.values()]) {
      if (!a.model.hosts.some((h) => h.state === 'running')) continue;
      if (a.dispatch.upgrade) {
        const outcomes = await this.upgrades.outcomes(a.stored.jobId);
        for (const h of a.model.hosts) {
          const rec = h.state === 'running' && h.hostJobId ? outcomes.get(h.hostJobId) : undefined;
          const r = upgradeResult(rec);
          if (r) await this.hostFinished(a, h.agentId, h.hostJobId!, r.status, r.message);
          // Under way: the host's message says where (staging, staged, switched; `rollout show` and watch).
          else if (rec && rec.reason !== h.message) await a.updateHosts([h], { message: rec.reason }, true);
        }
        continue;
      }
      const rows = await this.store.hostJobs(a.id);
      for (const h of a.model.hosts) {
        if (h.state !== 'running' || !h.hostJobId) continue;
        const row = rows.get(h.hostJobId);
        if (row && ['succeeded', 'failed', 'cancelled', 'lost'].includes(row.state)) {
          await this.hostFinished(a, h.agentId, h.hostJobId, row.state, row.message);
        }
      }
    }
  }

  /** Applies one decision; true when the rollout's shape changed and it should be asked again. */
  private async apply(a: ActiveRollout, actions: Action[], busy: Map<string, string>): Promise<boolean> {
    const m = a.model;
    let again = false;
    const starts: HostModel[] = [];
    for (const act of actions) {
      const h = 'agentId' in act ? a.host(act.agentId) : undefined;
      switch (act.kind) {
        case 'start':
          if (h && (h.state === 'pending' || h.state === 'ready')) starts.push(h);
          break;
        case 'hold':
          if (h && h.message !== act.message) {
            await a.updateHosts([h], { message: act.message }, true);
            this.emit(a.id);
          }
          break;
        case 'offline':
          await a.moveHosts([h!], 'offline', act.to, { message: act.message, finishedAt: this.clock.now() });
          if (act.to === 'failed') await this.checkBudget(a, h!.wave);
          again = true;
          break;
        case 'begin-wave':
          await this.beginWave(a, act.wave, 'begin-wave');
          again = true;
          break;
        case 'gate':
          await this.store.waveFinished(a.id, m.currentWave, this.clock.now());
          await a.moveTo('gate', act.approval ? 'awaiting-approval' : 'waiting', act.approval ? `wave ${m.currentWave + 1} done; waiting for approval: ferry rollout approve ${a.id}`
            : `wave ${m.currentWave + 1} done; next wave at ${new Date(act.until!).toISOString()}`, 'wave-done', { gateUntil: act.until });
          again = true;
          break;
        case 'finish': {
          // The current wave ends here too when an abort stopped it: its hosts ran until now.
          if (m.currentWave >= 0) await this.store.waveFinished(a.id, m.currentWave, this.clock.now());
          const n = (s: string) => m.hosts.filter((x) => x.state === s).length;
          await a.moveTo(act.state === 'aborted' ? 'stopped' : 'finish', act.state,
            `${act.state}: ${n('succeeded')} succeeded, ${n('failed')} failed, ${n('skipped')} skipped, ${n('cancelled')} cancelled`, 'finished');
          break;
        }
      }
    }
    // The budget may have paused or aborted the rollout above: then nothing starts.
    if (starts.length > 0 && m.state === 'running' && !m.paused) await this.startHosts(a, starts, busy);
    return again;
  }

  private async startHosts(a: ActiveRollout, hosts: HostModel[], busy: Map<string, string>): Promise<void> {
    const now = this.clock.now();
    // Intent first: after a crash a running host without a job row is known never to have been sent.
    // One write for all of them (a wave of hundreds starts at once).
    for (const h of hosts) h.hostJobId = `${a.stored.jobId}-${h.agentId}-${h.attempt}`;
    await a.moveHosts(hosts, 'start', 'running', { startedAt: now, finishedAt: null, message: '' });
    for (const h of hosts) busy.set(h.agentId, h.hostJobId!);
    if (a.dispatch.upgrade) {
      // Not connected here: the replica holding its session sends it (upgrade-mailbox.ts), at once on the hint, else on its poll.
      let remote = false;
      for (const h of hosts) if (!(await this.upgrades.send(a.dispatch, a.dispatch.upgrade, h))) remote = true;
      if (remote) this.deps.jobs.sequencer.onRemoteWork();
      this.deps.log.info({ rollout: a.id, hosts: hosts.length, version: a.dispatch.upgrade.version }, 'agent upgrades sent');
      return;
    }
    for (const h of hosts) {
      await this.deps.jobs.startHost(a.stored.jobId, h.hostJobId!, { ...a.dispatch, check: false }, h, this.hooks(a, h));
    }
    this.deps.log.info({ rollout: a.id, hosts: hosts.length, dispatchMs: this.clock.now() - now }, 'rollout hosts started');
  }
}
