import type { JobResult } from '../../../common/src/gen/ferry/v1/session.js';
import type { HostJobHooks } from '../jobs/job-coordinator.js';
import type { ControllerContext } from '../services/context.js';
import { ActiveRollout, type DispatchInfo } from './active-rollout.js';
import { budgetExceeded } from './budget.js';
import { buildRollout, dispatchInfo } from './create.js';
import { decide, type Action, type World } from './decide.js';
import { HOST_TERMINAL, ROLLOUT_TERMINAL, type HostModel } from './model.js';
import { runPrefetchPhase } from './prefetch-phase.js';
import { RolloutStore, type RolloutEventRecord, type StoredRollout } from './rollout-store.js';

/** Watchers get every persisted event, and bare pings (no event) when step progress changed. */
export type RolloutListener = (rolloutId: string, ev?: RolloutEventRecord) => void;

const TICK_MS = 1000;

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
  private readonly active = new Map<string, ActiveRollout>();
  private readonly listeners = new Set<RolloutListener>();
  private chain: Promise<unknown> = Promise.resolve();
  private since = Date.now();
  /** Agents whose session dropped while this controller ran, and when. */
  private readonly downSince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private kicked = false;
  private stopped = false;
  private unsubscribe: (() => void) | undefined;

  constructor(readonly ctx: ControllerContext) {
    this.store = new RolloutStore(ctx.db);
  }

  /** Runs `fn` after every change queued before it; failures are logged and do not stop the queue. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn);
    this.chain = next.catch((err: unknown) => this.ctx.log.error({ err }, 'rollout scheduler step failed'));
    return next;
  }

  /** Reloads unfinished rollouts and starts the loop. Call before agents can connect. */
  async start(): Promise<void> {
    this.since = Date.now();
    for (const id of await this.store.unfinishedIds()) {
      await this.activate(id).catch((err: unknown) => this.ctx.log.error({ err, rollout: id }, 'cannot resume rollout'));
    }
    this.unsubscribe = this.ctx.sessions.onChange((agentId, up) => {
      if (up) {
        this.downSince.delete(agentId);
        this.onAgentUp(agentId);
      } else this.downSince.set(agentId, Date.now());
      this.kick();
    });
    this.timer = setInterval(() => this.kick(), TICK_MS);
    this.timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    for (const a of this.active.values()) a.release();
    await this.chain.catch(() => undefined);
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
    const { stored, dispatch } = await buildRollout(this.ctx, specText, file, who);
    await this.ctx.jobs.createJob(stored.jobId, { planId: stored.planId, signed: dispatch.signed, params: dispatch.params, bundles: dispatch.bundles, check: false, createdBy: who });
    await this.store.insert(stored);
    await this.ctx.audit.record(who, 'rollout.create', stored.model.id, { name: stored.name, plan: stored.planName, hosts: stored.model.hosts.length, waves: stored.model.waveSizes });
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
    if (!stored) throw new Error(`rollout ${id} is not in the store`);
    const dispatch = info ?? (await dispatchInfo(this.ctx, stored));
    const a = new ActiveRollout(stored, dispatch, await this.store.lastSeq(id), this.store, (ev) => this.emit(ev.rolloutId, ev));
    for (const b of stored.bundles) a.hold(this.ctx.bundles.lease(b.bundleId));
    this.active.set(id, a);
    for (const h of stored.model.hosts.filter((x) => x.state === 'running' && x.hostJobId)) {
      const start = this.ctx.jobs.jobStart(h.hostJobId!, { ...dispatch, check: false });
      const row = await this.ctx.jobs.attach(h.hostJobId!, h, start, this.hooks(a, h));
      // Marked running here but no job row: the controller stopped between the
      // two writes, so the start was never sent. Sending it now is its first run.
      if (!row) await this.ctx.jobs.startHost(stored.jobId, h.hostJobId!, { ...dispatch, check: false }, h, this.hooks(a, h));
      else if (['succeeded', 'failed', 'cancelled', 'lost'].includes(row.state)) await this.hostFinished(a, h.agentId, h.hostJobId!, row.state, row.message);
    }
    if (stored.model.state === 'prefetching') void runPrefetchPhase(this, a);
    if (stored.model.state === 'aborting') for (const h of stored.model.hosts) if (h.state === 'running') this.ctx.jobs.cancel(h.hostJobId!, h.agentId);
    return a;
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
    const h = a.host(agentId);
    if (!h || h.hostJobId !== hostJobId || h.state !== 'running') return;
    const state = status === 'succeeded' ? 'succeeded' : status === 'cancelled' ? 'cancelled' : 'failed';
    await a.updateHosts([h], { state, finishedAt: Date.now(), message: status === 'lost' ? `lost: ${message}` : message });
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
      m.paused = true;
      m.pauseReason = reason;
      await a.save(reason, 'paused');
    } else if (m.strategy.onFailure === 'abort') {
      await this.abortNow(a, reason);
    }
  }

  /** Abort: hosts not started are cancelled, running hosts' jobs are cancelled (the agent kills the step). */
  async abortNow(a: ActiveRollout, reason: string): Promise<void> {
    const m = a.model;
    m.state = 'aborting';
    m.paused = false;
    m.pauseReason = reason;
    m.gateUntil = null;
    a.prefetch?.abort();
    const waiting = m.hosts.filter((h) => h.state === 'pending' || h.state === 'ready' || h.state === 'prefetching');
    await a.updateHosts(waiting, { state: 'cancelled', message: 'not started: the rollout was aborted', finishedAt: Date.now() });
    for (const h of m.hosts) if (h.state === 'running') this.ctx.jobs.cancel(h.hostJobId!, h.agentId);
    await a.save(reason, 'aborting');
    this.kick();
  }

  /** Wave `w` begins: its hosts become eligible now (the offline timeout counts from here). */
  async beginWave(a: ActiveRollout, w: number): Promise<void> {
    const m = a.model;
    const now = Date.now();
    if (m.currentWave >= 0) await this.store.waveTimes(a.id, m.currentWave, 'finished_at', now);
    m.currentWave = w;
    m.state = 'running';
    m.gateUntil = null;
    await a.updateHosts(m.hosts.filter((h) => h.wave === w && !HOST_TERMINAL.has(h.state)), { eligibleAt: now }, true);
    await this.store.waveTimes(a.id, w, 'started_at', now);
    await a.save(`wave ${w + 1} of ${m.waveSizes.length} started: ${m.waveSizes[w]} hosts`, 'wave-started');
  }

  private onAgentUp(agentId: string): void {
    // An abort's cancel could not reach a host that was offline; send it again now.
    for (const a of this.active.values()) {
      if (a.model.state !== 'aborting') continue;
      const h = a.host(agentId);
      if (h?.state === 'running') this.ctx.jobs.cancel(h.hostJobId!, agentId);
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const needBusy = [...this.active.values()].some((a) => a.model.state === 'running' && !a.model.paused);
    const busy = needBusy ? await this.ctx.jobs.busyAgents() : new Map<string, string>();
    for (const a of [...this.active.values()]) {
      for (let pass = 0; pass < 50; pass++) {
        const w: World = {
          now: Date.now(),
          connected: (id) => Boolean(this.ctx.sessions.get(id)),
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
          await a.updateHosts([h!], { state: act.to, message: act.message, finishedAt: Date.now() });
          if (act.to === 'failed') await this.checkBudget(a, h!.wave);
          again = true;
          break;
        case 'begin-wave':
          await this.beginWave(a, act.wave);
          again = true;
          break;
        case 'gate':
          m.state = act.approval ? 'awaiting-approval' : 'waiting';
          m.gateUntil = act.until;
          await this.store.waveTimes(a.id, m.currentWave, 'finished_at', Date.now());
          await a.save(act.approval ? `wave ${m.currentWave + 1} done; waiting for approval: ferry rollout approve ${a.id}`
            : `wave ${m.currentWave + 1} done; next wave at ${new Date(act.until!).toISOString()}`, 'wave-done');
          again = true;
          break;
        case 'finish': {
          m.state = act.state;
          m.paused = false;
          if (m.currentWave >= 0 && act.state !== 'aborted') await this.store.waveTimes(a.id, m.currentWave, 'finished_at', Date.now());
          const n = (s: string) => m.hosts.filter((x) => x.state === s).length;
          await a.save(`${act.state}: ${n('succeeded')} succeeded, ${n('failed')} failed, ${n('skipped')} skipped, ${n('cancelled')} cancelled`, 'finished');
          break;
        }
      }
    }
    // The budget may have paused or aborted the rollout above: then nothing starts.
    if (starts.length > 0 && m.state === 'running' && !m.paused) await this.startHosts(a, starts, busy);
    return again;
  }

  private async startHosts(a: ActiveRollout, hosts: HostModel[], busy: Map<string, string>): Promise<void> {
    const now = Date.now();
    for (const h of hosts) {
      Object.assign(h, { state: 'running', hostJobId: `${a.stored.jobId}-${h.agentId}-${h.attempt}`, startedAt: now, finishedAt: null, message: '' });
      busy.set(h.agentId, h.hostJobId!);
    }
    // Intent first: after a crash a running host without a job row is known never to have been sent.
    await a.updateHosts(hosts, {});
    for (const h of hosts) {
      await this.ctx.jobs.startHost(a.stored.jobId, h.hostJobId!, { ...a.dispatch, check: false }, h, this.hooks(a, h));
    }
    this.ctx.log.info({ rollout: a.id, hosts: hosts.length, dispatchMs: Date.now() - now }, 'rollout hosts started');
  }
}
