/**
 * How a controller shares its store with other replicas (docs/ha.md): the
 * scheduler lease and the singleton work it guards (the rollout scheduler,
 * the job-history sweep), session presence, the mailboxes that carry work
 * to the replica holding a host's session, and rollout changes passed to
 * the scheduler's replica. On SQLite there is one replica, which still
 * takes the lease; the rest is only made on a shared (PostgreSQL) store.
 *
 * Apart from controller.ts, which orders the start and the stop, because
 * these parts are made together and refer to each other.
 */
import type { ControllerContext } from './services/context.js';
import { controllerStatus } from './ha/controller-status.js';
import { FencedDb } from './ha/fenced-db.js';
import { Lease } from './ha/lease.js';
import { Leadership } from './ha/leadership.js';
import { SessionPresence } from './ha/presence.js';
import type { ReplicaRegistry } from './ha/replicas.js';
import { JobHistory } from './jobs/job-history.js';
import { JobMailbox } from './jobs/job-mailbox.js';
import { systemClock } from './rollouts/clock.js';
import { RolloutCommands } from './rollouts/rollout-commands.js';
import { RolloutScheduler } from './rollouts/scheduler.js';
import { RolloutStore } from './rollouts/rollout-store.js';
import { UpgradeMailbox } from './rollouts/upgrade-mailbox.js';
import { agentArch, UpgradeHosts } from './rollouts/upgrade-hosts.js';
import type { Db } from './store/db.js';

/** What {@link wireReplicas} works with, besides the context. */
export interface ReplicaWiring {
  /** This process among the replicas sharing the store (the lease's owner name). */
  replicaId: string;
  replicas: ReplicaRegistry;
  /** The store connection of the lease (its own pool on PostgreSQL; the store itself on SQLite). */
  control: Db;
  /** True on a store shared by replicas (PostgreSQL). */
  shared: boolean;
  /** Undo steps of a start in progress (see Controller.start). */
  opened: Array<() => unknown>;
}

/** The parts the controller keeps to stop them. */
export interface ReplicaParts {
  leadership: Leadership;
  presence: SessionPresence | undefined;
  mailbox: JobMailbox | undefined;
}

/**
 * Makes the parts (see module comment) and sets the context's rollouts,
 * status and rolloutCommands. The lease is not taken yet: the caller starts
 * `leadership` when the controller is ready to drive rollouts.
 */
export function wireReplicas(ctx: ControllerContext, o: ReplicaWiring): ReplicaParts {
  const { db, config, log, sessions, jobs, bundles } = ctx;
  const { replicaId, replicas, control, shared, opened } = o;
  // Singleton work (the rollout scheduler, the job-history sweep) runs only
  // on the replica holding the scheduler lease, and writes through the
  // fence: a replica that lost the lease cannot write (docs/ha.md).
  let leadership: Leadership | undefined;
  const fenced = new FencedDb(db, () => leadership?.fence());
  const presence = shared ? new SessionPresence(db, replicaId, sessions, replicas, log.child({ part: 'presence' })) : undefined;
  presence?.start();
  opened.push(() => presence?.stop());
  if (presence) ctx.jobs.connectedElsewhere = () => presence.connected();
  ctx.rollouts = new RolloutScheduler({
    store: new RolloutStore(fenced), sessions, jobs: ctx.jobs, prefetch: ctx.prefetch, plans: ctx.plans, bundles, agents: ctx.agents, agentUpgrades: ctx.agentUpgrades,
    audit: ctx.audit, log: log.child({ part: 'rollouts' }), clock: systemClock, presence, relayPins: ctx.relays.pins,
  });
  // Job history past the retention goes when elected and every hour after.
  const sweeping = new JobHistory(fenced);
  const sweep = () => sweeping.sweep(Date.now() - config.jobRetentionMs).then(
    (n) => { if (n > 0) log.info({ jobs: n, retentionMs: config.jobRetentionMs }, 'job history: removed runs older than the retention'); },
    (err: Error) => log.error({ err }, 'job history sweep failed'));
  let sweeper: NodeJS.Timeout | undefined;
  const lease = new Lease({ db: control, name: 'scheduler', owner: replicaId, ttlMs: config.leaseTtlMs, exclusive: db.dialect === 'sqlite' });
  ctx.status = () => controllerStatus({ db, replicaId, store: config.store.display, chunkDir: config.chunkDir, lease, replicas, sessions, presence });
  leadership = new Leadership({
    lease,
    name: 'scheduler', owner: replicaId, ttlMs: config.leaseTtlMs, clock: systemClock, log: log.child({ part: 'lease' }),
    onElected: async () => {
      // Running hosts are re-attached to their stored jobs first, so results that arrive on reconnect reach them.
      await ctx.rollouts.start();
      // Changes asked through other replicas are applied here from now on.
      ctx.rolloutCommands?.startApplying();
      await sweep();
      sweeper = setInterval(() => void sweep(), 3_600_000);
    },
    onDeposed: async () => {
      clearInterval(sweeper);
      await ctx.rolloutCommands?.stopApplying();
      await ctx.rollouts.stop();
    },
  });
  // Several replicas: starts recorded by one are delivered by the one holding the host's session (jobs/job-mailbox.ts).
  // Agent upgrades too (rollouts/upgrade-mailbox.ts): the scheduler's replica sends only to the sessions it holds.
  const upgradeMail = shared ? new UpgradeMailbox(db, sessions, new UpgradeHosts(sessions, ctx.agentUpgrades, {
    arch: async (id) => { const a = await ctx.agents.get(id); return a && agentArch(a); },
  }), new RolloutStore(db), { plans: ctx.plans, bundles }, log.child({ part: 'upgrade-mailbox' })) : undefined;
  // And bundle prefetch stages (bundles/prefetch.ts): a prefetch through any replica reaches hosts on every replica.
  const mailbox = shared ? new JobMailbox(db, jobs, sessions, log.child({ part: 'mailbox' }), undefined, [upgradeMail!, ctx.prefetch]) : undefined;
  if (mailbox && presence) ctx.prefetch.elsewhere = { connected: () => presence.connected(), hint: () => mailbox.hint() };
  mailbox?.start();
  opened.push(() => mailbox?.stop());
  // Rollout changes asked through a replica that is not the scheduler are applied by the one that is (rollouts/rollout-commands.ts).
  if (shared) {
    const commands = new RolloutCommands({ db, fenced, scheduler: ctx.rollouts, replicaId, log: log.child({ part: 'rollout-commands' }) });
    ctx.rolloutCommands = commands;
    opened.push(() => commands.stopApplying());
  }
  return { leadership, presence, mailbox };
}
