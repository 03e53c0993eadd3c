import { BundleState, type JobBundle } from '../../../common/src/gen/ferry/v1/session.js';
import type { PrefetchEvent } from '../../../common/src/gen/ferry/v1/admin.js';
import type { ActiveRollout } from './active-rollout.js';
import type { RolloutScheduler } from './scheduler.js';

/**
 * `prefetch: true`: before wave 1, every target stages the plan's bundles
 * (ctx.prefetch.run: each host fetches only the chunks it lacks). Per host:
 * prefetching → ready when every bundle is staged; → failed when staging
 * failed (disk full, bad chunk: better known before wave 1, and it counts
 * against the total error budget); → pending when the host is offline (its
 * job stages the bundles itself when its wave runs). Abort stops the phase.
 * After a controller restart the phase runs again for the hosts still
 * prefetching; what a host already holds is not fetched again.
 */
export async function runPrefetchPhase(s: RolloutScheduler, a: ActiveRollout): Promise<void> {
  const ctx = s.ctx;
  const abort = new AbortController();
  a.prefetch = abort;
  const bundles = (await Promise.all(a.dispatch.bundles.map((b: JobBundle) => ctx.bundles.byId(b.bundleId)))).filter((b) => b !== undefined);
  const readyCount = new Map<string, number>();
  const settle = (ev: PrefetchEvent, bundleName: string) => s.serial(async () => {
    const h = a.host(ev.agentId);
    if (!h || h.state !== 'prefetching' || abort.signal.aborted) return;
    if (ev.state === BundleState.BUNDLE_STATE_READY) {
      const n = (readyCount.get(h.agentId) ?? 0) + 1;
      readyCount.set(h.agentId, n);
      if (n === bundles.length) await a.updateHosts([h], { state: 'ready', message: 'bundles staged' });
    } else if (ev.offline) {
      await a.updateHosts([h], { state: 'pending', message: 'offline during prefetch: its job will stage the bundles when its wave runs' });
    } else {
      await a.updateHosts([h], { state: 'failed', message: `prefetch ${bundleName}: ${ev.error || 'staging failed'}`, finishedAt: Date.now() });
      await s.checkBudget(a, h.wave);
    }
  });
  try {
    for (const b of bundles) {
      const targets = a.model.hosts.filter((h) => h.state === 'prefetching').map((h) => ({ agentId: h.agentId, hostname: h.hostname }));
      if (targets.length === 0 || abort.signal.aborted) break;
      const name = `${b.manifest.name}:${b.manifest.version}`;
      const pending: Array<Promise<void>> = [];
      await ctx.prefetch.run(b, targets, (ev) => {
        if (!ev.final && (ev.state === BundleState.BUNDLE_STATE_READY || ev.state === BundleState.BUNDLE_STATE_FAILED)) pending.push(settle(ev, name));
        else if (!ev.final) s.emit(a.id);
      }, abort.signal);
      await Promise.all(pending);
    }
  } catch (err) {
    ctx.log.error({ err, rollout: a.id }, 'rollout prefetch failed');
  }
  if (s.isStopped()) return;
  await s.serial(async () => {
    if (a.prefetch === abort) a.prefetch = null;
    if (a.model.state !== 'prefetching') return; // aborted meanwhile
    // Hosts the prefetch did not settle (it was interrupted) stage on demand.
    await a.updateHosts(a.model.hosts.filter((h) => h.state === 'prefetching'), { state: 'pending' }, true);
    a.model.state = 'running';
    const n = (st: string) => a.model.hosts.filter((h) => h.state === st).length;
    await a.save(`prefetch done: ${n('ready')} ready, ${n('failed')} failed, ${n('pending')} offline`, 'prefetched');
  });
  s.kick();
}
