/**
 * What happens to a live rollout as a whole: decide()'s actions applied
 * (hosts held, started or given up as offline; waves begun and gated; the
 * rollout finished), the error budget, and abort. The scheduler
 * (scheduler.ts) runs these in its queue, for its own passes and for
 * operators' actions (controls.ts) alike.
 *
 * Apart from the scheduler because these are the rollout's state changes,
 * while the scheduler owns which rollouts are live, when they are looked
 * at, and the hosts' jobs (host-jobs.ts).
 */
import type { ActiveRollout } from './active-rollout.js';
import { budgetExceeded } from './budget.js';
import type { Clock } from './clock.js';
import type { Action } from './decide.js';
import type { HostJobs } from './host-jobs.js';
import { HOST_TERMINAL, ROLLOUT_TERMINAL, type HostModel } from './model.js';
import type { RolloutStore } from './rollout-store.js';
import { rolloutTransition, setPaused } from './transitions.js';

/** What the moves need from the scheduler that owns them. */
export interface MovesOwner {
  store: Pick<RolloutStore, 'waveStarted' | 'waveFinished'>;
  clock: Clock;
  hostJobs: Pick<HostJobs, 'start' | 'abort'>;
  /** Tells watchers that progress changed. */
  emit(rolloutId: string): void;
  /** Asks for a scheduling pass soon. */
  kick(): void;
}

/** See module comment. One per scheduler. */
export class RolloutMoves {
  constructor(private readonly s: MovesOwner) {}

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
    await a.moveHosts(waiting, 'abort', 'cancelled', { message: 'not started: the rollout was aborted', finishedAt: this.s.clock.now() });
    await this.s.hostJobs.abort(a);
    await a.moveTo('abort', 'aborting', reason, 'aborting', { pauseReason: reason, gateUntil: null });
    this.s.kick();
  }

  /**
   * Wave `w` begins (`cause`: the previous wave was done, its wait ended, or
   * an operator approved it): its hosts become eligible now (the offline
   * timeout counts from here).
   */
  async beginWave(a: ActiveRollout, w: number, cause: 'begin-wave' | 'approve'): Promise<void> {
    const m = a.model;
    const now = this.s.clock.now();
    rolloutTransition({ ...m }, cause, 'running');
    if (m.currentWave >= 0) await this.s.store.waveFinished(a.id, m.currentWave, now);
    await a.updateHosts(m.hosts.filter((h) => h.wave === w && !HOST_TERMINAL.has(h.state)), { eligibleAt: now }, true);
    await this.s.store.waveStarted(a.id, w, now);
    await a.moveTo(cause, 'running', `wave ${w + 1} of ${m.waveSizes.length} started: ${m.waveSizes[w]} hosts`, 'wave-started', { currentWave: w, gateUntil: null });
  }

  /** Applies one decision; true when the rollout's shape changed and it should be asked again. */
  async apply(a: ActiveRollout, actions: Action[], busy: Map<string, string>): Promise<boolean> {
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
            this.s.emit(a.id);
          }
          break;
        case 'offline':
          await a.moveHosts([h!], 'offline', act.to, { message: act.message, finishedAt: this.s.clock.now() });
          if (act.to === 'failed') await this.checkBudget(a, h!.wave);
          again = true;
          break;
        case 'begin-wave':
          await this.beginWave(a, act.wave, 'begin-wave');
          again = true;
          break;
        case 'gate':
          await this.s.store.waveFinished(a.id, m.currentWave, this.s.clock.now());
          await a.moveTo('gate', act.approval ? 'awaiting-approval' : 'waiting', act.approval ? `wave ${m.currentWave + 1} done; waiting for approval: ferry rollout approve ${a.id}`
            : `wave ${m.currentWave + 1} done; next wave at ${new Date(act.until!).toISOString()}`, 'wave-done', { gateUntil: act.until });
          again = true;
          break;
        case 'finish': {
          // The current wave ends here too when an abort stopped it: its hosts ran until now.
          if (m.currentWave >= 0) await this.s.store.waveFinished(a.id, m.currentWave, this.s.clock.now());
          const n = (s: string) => m.hosts.filter((x) => x.state === s).length;
          await a.moveTo(act.state === 'aborted' ? 'stopped' : 'finish', act.state,
            `${act.state}: ${n('succeeded')} succeeded, ${n('failed')} failed, ${n('skipped')} skipped, ${n('cancelled')} cancelled`, 'finished');
          break;
        }
      }
    }
    // The budget may have paused or aborted the rollout above: then nothing starts.
    if (starts.length > 0 && m.state === 'running' && !m.paused) await this.s.hostJobs.start(a, starts, busy);
    return again;
  }
}
