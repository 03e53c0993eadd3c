/**
 * Agent upgrades reach a host wherever its session is, like plan-job starts
 * (jobs/job-mailbox.ts, which calls deliver() on each of its polls and
 * wake-up hints). The scheduler runs on one replica and sends upgrades to
 * the sessions it holds; every replica also reads the store for upgrade
 * rollouts' running hosts whose session is on it and sends them their
 * upgrade (upgrade-hosts.ts), once per session. The agent answers an upgrade
 * id it already has with its report, never a second upgrade, so a host the
 * scheduler's replica also reached is not upgraded twice. The outcome comes
 * back through the store (agent_upgrades, written by the replica holding the
 * session), where the scheduler reads it.
 */
import type { Logger } from '../../../common/src/log.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { Db } from '../store/db.js';
import type { DispatchInfo } from './active-rollout.js';
import { dispatchInfo, type CreateDeps } from './create.js';
import type { RolloutStore } from './rollout-store.js';
import type { UpgradeHosts } from './upgrade-hosts.js';

/** Dispatches cached per rollout (immutable once created); bounded. */
const CACHE_MAX = 50;

export class UpgradeMailbox {
  /** Upgrade ids already sent, per session object (a reconnect is a new session: sent again). */
  private readonly sent = new WeakMap<object, Set<string>>();
  private readonly dispatches = new Map<string, DispatchInfo>();

  constructor(
    private readonly db: Db,
    private readonly sessions: Pick<SessionRegistry, 'get'>,
    private readonly upgrades: Pick<UpgradeHosts, 'send'>,
    private readonly rollouts: Pick<RolloutStore, 'load'>,
    private readonly deps: Pick<CreateDeps, 'plans' | 'bundles'>,
    private readonly log: Logger,
  ) {}

  /** Sends every unanswered upgrade of a host connected here (one indexed query when there is none). */
  async deliver(): Promise<void> {
    // Upgrade rollouts are the ones without a plan (create.ts).
    const rows = await this.db.all<{ rollout_id: string; agent_id: string; host_job_id: string }>(
      `SELECT h.rollout_id, h.agent_id, h.host_job_id FROM rollout_hosts h JOIN rollouts r ON r.id = h.rollout_id
       WHERE r.plan_id = '' AND r.state NOT IN ('succeeded', 'failed', 'aborted') AND h.state = 'running' AND h.host_job_id IS NOT NULL`);
    for (const r of rows) {
      const session = this.sessions.get(r.agent_id);
      if (!session) continue;
      let ids = this.sent.get(session);
      if (ids?.has(r.host_job_id)) continue;
      const dispatch = await this.dispatch(r.rollout_id);
      if (!dispatch?.upgrade) continue;
      if (await this.upgrades.send(dispatch, dispatch.upgrade, { agentId: r.agent_id, hostJobId: r.host_job_id })) {
        if (!ids) this.sent.set(session, (ids = new Set()));
        ids.add(r.host_job_id);
        this.log.info({ rollout: r.rollout_id, agent: r.agent_id, upgrade: r.host_job_id }, 'agent upgrade delivered from the mailbox');
      }
    }
  }

  private async dispatch(rolloutId: string): Promise<DispatchInfo | undefined> {
    const known = this.dispatches.get(rolloutId);
    if (known) return known;
    const stored = await this.rollouts.load(rolloutId);
    if (!stored?.spec.upgrade) return undefined;
    const d = await dispatchInfo(this.deps, stored);
    if (this.dispatches.size >= CACHE_MAX) this.dispatches.clear();
    this.dispatches.set(rolloutId, d);
    return d;
  }
}
