/**
 * The jobs of a rollout's hosts: sending them (a plan job, or an agent
 * upgrade for `ferry agents upgrade`), re-attaching them after a restart,
 * sending again what an offline host missed, cancelling them on abort, and
 * finishing each host from its result, whichever replica recorded it.
 *
 * Apart from the scheduler (scheduler.ts), which decides when hosts start
 * and what a result means for the rollout, because this is the one place
 * that knows the two kinds of host job and how their results come back.
 */
import type { JobResult } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { HostJobHooks, JobCoordinator } from '../jobs/job-coordinator.js';
import type { ActiveRollout } from './active-rollout.js';
import type { Clock } from './clock.js';
import type { HostModel } from './model.js';
import type { RolloutStore } from './rollout-store.js';
import { upgradeResult, type UpgradeHosts } from './upgrade-hosts.js';

/** What host jobs need from the scheduler that owns them. */
export interface HostJobsOwner {
  jobs: Pick<JobCoordinator, 'jobStart' | 'attach' | 'startHost' | 'cancel' | 'sequencer'>;
  upgrades: Pick<UpgradeHosts, 'send' | 'outcomes'>;
  store: Pick<RolloutStore, 'hostJobs'>;
  log: Logger;
  clock: Clock;
  /** Runs `fn` in the scheduler's queue (no two changes to rollouts interleave). */
  serial<T>(fn: () => Promise<T>): Promise<T>;
  /** Tells watchers that progress changed. */
  emit(rolloutId: string): void;
  /** Asks for a scheduling pass soon. */
  kick(): void;
  checkBudget(a: ActiveRollout, wave: number): Promise<void>;
  /** False for a rollout of an earlier term (this replica was deposed and elected again). */
  drives(a: ActiveRollout): boolean;
}

/** See module comment. One per scheduler. */
export class HostJobs {
  constructor(private readonly s: HostJobsOwner) {}

  /** A rollout driven again (after a restart, or elected again): its running hosts get their stored jobs back. */
  async reattach(a: ActiveRollout): Promise<void> {
    const { stored, dispatch } = a;
    // An upgrade's running hosts are finished from agent_upgrades by the next pass (collect), or sent again when they connect.
    if (dispatch.upgrade) {
      for (const h of stored.model.hosts.filter((x) => x.state === 'running' && x.hostJobId)) await this.s.upgrades.send(dispatch, dispatch.upgrade, h);
      return;
    }
    for (const h of stored.model.hosts.filter((x) => x.state === 'running' && x.hostJobId)) {
      const start = this.s.jobs.jobStart(h.hostJobId!, { ...dispatch, check: false });
      const row = await this.s.jobs.attach(h.hostJobId!, h, start, this.hooks(a, h));
      // Marked running here but no job row: the controller stopped between the
      // two writes, so the start was never sent. Sending it now is its first run.
      if (!row) await this.s.jobs.startHost(stored.jobId, h.hostJobId!, { ...dispatch, check: false }, h, this.hooks(a, h));
      else if (['succeeded', 'failed', 'cancelled', 'lost'].includes(row.state)) await this.finished(a, h.agentId, h.hostJobId!, row.state, row.message);
    }
  }

  /** Sends the running hosts' plan jobs a cancel (the agent kills the step). */
  cancel(a: ActiveRollout): void {
    for (const h of a.model.hosts) if (h.state === 'running') this.s.jobs.cancel(h.hostJobId!, h.agentId);
  }

  /** The rollout is being aborted: running hosts' jobs are cancelled; upgrades in flight are waited for. */
  async abort(a: ActiveRollout): Promise<void> {
    const m = a.model;
    // An agent upgrade in flight is not cancelled: the host commits or rolls back by itself, and the abort waits for it.
    if (!a.dispatch.upgrade) {
      this.cancel(a);
    } else {
      // ...but one the host never acknowledged (not connected here, or an agent too old to know AgentUpgrade) is not waited for.
      const outcomes = await this.s.upgrades.outcomes(a.stored.jobId);
      const silent = m.hosts.filter((h) => h.state === 'running' && h.hostJobId && !outcomes.has(h.hostJobId));
      await a.moveHosts(silent, 'abandon', 'cancelled', { finishedAt: this.s.clock.now(), message: 'the rollout was aborted before the host acknowledged the upgrade' });
    }
  }

  /** An agent's session came up: what it missed while offline is sent again. */
  agentUp(rollouts: readonly ActiveRollout[], agentId: string): void {
    for (const a of rollouts) {
      // An upgrade not yet answered (the host was offline, or is back on either version): send it again; the agent dedupes by id.
      const u = a.dispatch.upgrade;
      const uh = u && a.host(agentId);
      if (u && uh?.state === 'running') void this.s.serial(() => this.s.upgrades.send(a.dispatch, u, uh));
    }
    // An abort's cancel could not reach a host that was offline; send it again now.
    for (const a of rollouts) {
      if (a.dispatch.upgrade) continue;
      if (a.model.state !== 'aborting') continue;
      const h = a.host(agentId);
      if (h?.state === 'running') this.s.jobs.cancel(h.hostJobId!, agentId);
    }
  }

  /** Starts `hosts` of the rollout; each is marked busy in `busy` (for the rest of the pass). */
  async start(a: ActiveRollout, hosts: HostModel[], busy: Map<string, string>): Promise<void> {
    const now = this.s.clock.now();
    // Intent first: after a crash a running host without a job row is known never to have been sent.
    // One write for all of them (a wave of hundreds starts at once).
    for (const h of hosts) h.hostJobId = `${a.stored.jobId}-${h.agentId}-${h.attempt}`;
    await a.moveHosts(hosts, 'start', 'running', { startedAt: now, finishedAt: null, message: '' });
    for (const h of hosts) busy.set(h.agentId, h.hostJobId!);
    if (a.dispatch.upgrade) {
      // Not connected here: the replica holding its session sends it (upgrade-mailbox.ts), at once on the hint, else on its poll.
      let remote = false;
      for (const h of hosts) if (!(await this.s.upgrades.send(a.dispatch, a.dispatch.upgrade, h))) remote = true;
      if (remote) this.s.jobs.sequencer.onRemoteWork();
      this.s.log.info({ rollout: a.id, hosts: hosts.length, version: a.dispatch.upgrade.version }, 'agent upgrades sent');
      return;
    }
    for (const h of hosts) {
      await this.s.jobs.startHost(a.stored.jobId, h.hostJobId!, { ...a.dispatch, check: false }, h, this.hooks(a, h));
    }
    this.s.log.info({ rollout: a.id, hosts: hosts.length, dispatchMs: this.s.clock.now() - now }, 'rollout hosts started');
  }

  /**
   * Results recorded by another replica: a host's session (and so its job
   * messages) may be on any replica, which records them in job_hosts; only
   * the replica holding the session calls the job's hooks. The scheduler
   * reads the job rows of its running hosts once per pass and finishes
   * those that ended. One query per rollout with running hosts per pass.
   */
  async collect(rollouts: readonly ActiveRollout[]): Promise<void> {
    for (const a of rollouts) {
      if (!a.model.hosts.some((h) => h.state === 'running')) continue;
      if (a.dispatch.upgrade) {
        const outcomes = await this.s.upgrades.outcomes(a.stored.jobId);
        for (const h of a.model.hosts) {
          const rec = h.state === 'running' && h.hostJobId ? outcomes.get(h.hostJobId) : undefined;
          const r = upgradeResult(rec);
          if (r) await this.finished(a, h.agentId, h.hostJobId!, r.status, r.message);
          // Under way: the host's message says where (staging, staged, switched; `rollout show` and watch).
          else if (rec && rec.reason !== h.message) await a.updateHosts([h], { message: rec.reason }, true);
        }
        continue;
      }
      const rows = await this.s.store.hostJobs(a.id);
      for (const h of a.model.hosts) {
        if (h.state !== 'running' || !h.hostJobId) continue;
        const row = rows.get(h.hostJobId);
        if (row && ['succeeded', 'failed', 'cancelled', 'lost'].includes(row.state)) {
          await this.finished(a, h.agentId, h.hostJobId, row.state, row.message);
        }
      }
    }
  }

  private hooks(a: ActiveRollout, h: HostModel): HostJobHooks {
    const hostJobId = h.hostJobId!;
    return {
      sink: (ev) => { if (ev.event?.$case === 'step') this.s.emit(a.id); },
      done: (r: JobResult | undefined) => {
        const status = r?.status ?? 'failed';
        // Name the failing step unless the agent's message already does.
        const message = status === 'failed' && r?.failedStep && !r.message.includes(r.failedStep) ? `step ${r.failedStep}: ${r.message}` : (r?.message ?? '');
        void this.s.serial(() => this.finished(a, h.agentId, hostJobId, status, message));
      },
    };
  }

  /** A host's job ended (or was found ended after a restart); stale attempts are ignored. */
  private async finished(a: ActiveRollout, agentId: string, hostJobId: string, status: string, message: string): Promise<void> {
    // A result for a rollout of an earlier term (this replica was deposed and elected again) is the reloaded copy's to apply.
    if (!this.s.drives(a)) return;
    const h = a.host(agentId);
    if (!h || h.hostJobId !== hostJobId || h.state !== 'running') return;
    const state = status === 'succeeded' ? 'succeeded' : status === 'cancelled' ? 'cancelled' : 'failed';
    await a.moveHosts([h], 'result', state, { finishedAt: this.s.clock.now(), message: status === 'lost' ? `lost: ${message}` : message });
    if (state === 'failed') await this.s.checkBudget(a, h.wave);
    this.s.kick();
  }
}
