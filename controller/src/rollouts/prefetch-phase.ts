import { BundleState, type JobBundle } from '../../../common/src/gen/ferry/v1/session.js';
import type { PrefetchEvent } from '../../../common/src/gen/ferry/v1/admin.js';
import type { Logger } from '../../../common/src/log.js';
import type { BundleStore, StoredBundle } from '../bundles/bundle-store.js';
import type { PrefetchCoordinator } from '../bundles/prefetch.js';
import type { ActiveRollout, RunningPhase } from './active-rollout.js';

/** What the phase needs from the scheduler that owns it. */
export interface PhaseOwner {
  prefetch: Pick<PrefetchCoordinator, 'run'>;
  bundles: Pick<BundleStore, 'byId'>;
  log: Logger;
  /** Runs `fn` in the scheduler's queue (no two changes to rollouts interleave). */
  serial<T>(fn: () => Promise<T>): Promise<T>;
  checkBudget(a: ActiveRollout, wave: number): Promise<void>;
  /** Tells watchers that progress changed. */
  emit(rolloutId: string): void;
}

const OFFLINE = 'offline during prefetch: its job stages the bundles when its wave runs (the offline rules apply then)';

/**
 * `prefetch: true`: before wave 1, every target stages the plan's bundles
 * (each host fetches only the chunks it lacks), each host on its own, one
 * bundle after the other. Per host: prefetching → ready when every bundle is
 * staged; → failed when staging failed (disk full, bad chunk: better known
 * before wave 1, and it counts against the total error budget); → pending
 * when the host is offline at the start or drops off mid-stage (`offline`):
 * its job stages the bundles itself when its wave runs, and the rollout's
 * offline rules (wait up to offlineTimeout, then fail or skip) apply to it
 * there. So a host that disconnects never holds the phase up.
 *
 * The scheduler owns the phase: it starts it (`run`, awaited by the
 * scheduler's stop), tells it about disconnects, and stops it on abort.
 * After a controller restart the phase runs again for the hosts still
 * prefetching; what a host already holds is not fetched again.
 */
export class PrefetchPhase implements RunningPhase {
  private readonly abort = new AbortController();
  /** One abort per host still staging: a disconnect ends that host's wait only. */
  private readonly hostAborts = new Map<string, AbortController>();

  constructor(private readonly s: PhaseOwner, private readonly a: ActiveRollout) {}

  /** Stops the phase (abort, or the scheduler stopping): hosts still staging are left as they are. */
  stop(): void {
    this.abort.abort();
  }

  /** The agent's session dropped: if it is still staging, it counts as offline now. */
  offline(agentId: string): void {
    this.hostAborts.get(agentId)?.abort();
  }

  /** Runs the phase to its end; then the rollout is running (unless it was aborted or stopped meanwhile). */
  async run(): Promise<void> {
    const a = this.a;
    const bundles = (await Promise.all(a.dispatch.bundles.map((b: JobBundle) => this.s.bundles.byId(b.bundleId)))).filter((b) => b !== undefined);
    const hosts = a.model.hosts.filter((h) => h.state === 'prefetching');
    await Promise.all(hosts.map((h) => this.stageHost(h.agentId, h.hostname, bundles).catch((err: unknown) => {
      this.s.log.error({ err, rollout: a.id, agent: h.agentId }, 'rollout prefetch failed');
    })));
    if (this.abort.signal.aborted) return;
    await this.s.serial(async () => {
      if (a.prefetch === this) a.prefetch = null;
      if (a.model.state !== 'prefetching' || this.abort.signal.aborted) return;
      // Hosts the phase could not settle (an error above, a bundle gone) stage on demand, like offline ones.
      await a.moveHosts(a.model.hosts.filter((h) => h.state === 'prefetching'), 'offline', 'pending',
        { message: 'prefetch did not finish for this host: its job stages the bundles when its wave runs' });
      const n = (st: string) => a.model.hosts.filter((h) => h.state === st).length;
      await a.moveTo('prefetched', 'running', `prefetch done: ${n('ready')} ready, ${n('failed')} failed, ${n('pending')} offline`, 'prefetched');
    });
  }

  /** Stages every bundle on one host, in turn; stops at its first failure or when it goes offline. */
  private async stageHost(agentId: string, hostname: string, bundles: StoredBundle[]): Promise<void> {
    const mine = new AbortController();
    this.hostAborts.set(agentId, mine);
    const signal = AbortSignal.any([this.abort.signal, mine.signal]);
    try {
      for (const [i, b] of bundles.entries()) {
        let outcome: PrefetchEvent | undefined;
        await this.s.prefetch.run(b, [{ agentId, hostname }], (ev) => {
          if (ev.final || ev.agentId !== agentId) return;
          if (ev.state === BundleState.BUNDLE_STATE_READY || ev.state === BundleState.BUNDLE_STATE_FAILED) outcome = ev;
          else this.s.emit(this.a.id);
        }, signal);
        if (this.abort.signal.aborted) return;
        const name = `${b.manifest.name}:${b.manifest.version}`;
        // No outcome: the host dropped off mid-stage (its wait was ended by `offline`).
        if (!outcome || outcome.offline) return await this.settle(agentId, 'offline');
        if (outcome.state === BundleState.BUNDLE_STATE_FAILED) return await this.settle(agentId, 'failed', `prefetch ${name}: ${outcome.error || 'staging failed'}`);
        if (i === bundles.length - 1) await this.settle(agentId, 'ready');
      }
    } finally {
      this.hostAborts.delete(agentId);
    }
  }

  private settle(agentId: string, outcome: 'ready' | 'failed' | 'offline', error = ''): Promise<void> {
    return this.s.serial(async () => {
      const a = this.a;
      const h = a.host(agentId);
      if (!h || h.state !== 'prefetching' || this.abort.signal.aborted) return;
      if (outcome === 'ready') await a.moveHosts([h], 'staged', 'ready', { message: 'bundles staged' });
      else if (outcome === 'offline') await a.moveHosts([h], 'offline', 'pending', { message: OFFLINE });
      else {
        await a.moveHosts([h], 'stage-failed', 'failed', { message: error, finishedAt: a.clock.now() });
        await this.s.checkBudget(a, h.wave);
      }
    });
  }
}
