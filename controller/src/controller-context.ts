/**
 * The parts every gRPC service shares (ControllerContext, services/context.ts),
 * made over the opened store and wired to each other: the stores, the job
 * coordinator and what runs on it, and the relay directory. Apart from
 * controller.ts, which orders the start and the stop, because this is what
 * the parts are, not when they start; the parts made with the scheduler
 * lease (rollouts, status) are set by controller-replicas.ts.
 */
import type { Logger } from '../../common/src/log.js';
import { BundleStore } from './bundles/bundle-store.js';
import { PrefetchCoordinator } from './bundles/prefetch.js';
import type { ControllerConfig } from './config.js';
import { ExecCoordinator } from './exec/exec-coordinator.js';
import { JobCoordinator } from './jobs/job-coordinator.js';
import { JobHistory } from './jobs/job-history.js';
import type { PromMetrics } from './metrics/prom-metrics.js';
import type { CertificateAuthority } from './pki/ca.js';
import { PlanStore } from './plans/plan-store.js';
import { RegistryStore } from './registry/registry-store.js';
import { RelayDirectory } from './relays/relay-directory.js';
import { systemClock } from './rollouts/clock.js';
import type { RolloutScheduler } from './rollouts/scheduler.js';
import type { ControllerContext } from './services/context.js';
import type { SessionRegistry } from './sessions/registry.js';
import { AgentUpgradeStore } from './store/agent-upgrades.js';
import { AgentStore } from './store/agents.js';
import { AuditLog } from './store/audit.js';
import type { Db } from './store/db.js';
import { TokenStore } from './store/tokens.js';

/** What the context is made from. */
export interface ContextSource {
  config: ControllerConfig;
  log: Logger;
  ca: CertificateAuthority;
  db: Db;
  sessions: SessionRegistry;
  metrics: PromMetrics;
  /** Addresses agents should dial (ControllerContext.joinAddresses). */
  joinAddresses(): string[];
}

/** Makes the context; `rollouts` and `status` are left for wireReplicas (controller-replicas.ts) to set. */
export function newControllerContext(src: ContextSource): ControllerContext {
  const { config, log, ca, db, sessions, metrics } = src;
  const bundles = new BundleStore(db, config.chunkDir);
  const jobs = new JobCoordinator(db, sessions, log.child({ part: 'jobs' }), metrics, systemClock);
  const history = new JobHistory(db);
  const ctx: ControllerContext = {
    bundles, prefetch: new PrefetchCoordinator(db, sessions, bundles, log.child({ part: 'prefetch' })),
    jobs, history,
    plans: new PlanStore(db, bundles),
    rollouts: undefined as unknown as RolloutScheduler, // set by wireReplicas, from the parts it uses
    config, log, ca, db, sessions, metrics,
    tokens: new TokenStore(db), agents: new AgentStore(db), agentUpgrades: new AgentUpgradeStore(db), audit: new AuditLog(db), registry: new RegistryStore(db),
    exec: new ExecCoordinator(jobs, history, log.child({ part: 'exec' })),
    relays: undefined as unknown as RelayDirectory, // set below (it needs the context's agent store)
    joinAddresses: src.joinAddresses,
    status: undefined as unknown as ControllerContext['status'], // set by wireReplicas, with the lease
  };
  ctx.relays = new RelayDirectory(db, ctx.agents, sessions, ca, () => config.agentCertTtlMs, log.child({ part: 'relays' }), bundles);
  // Prefetches and rollouts pin their bundles on the relays and warm them first (relays/relay-pins.ts).
  ctx.prefetch.relays = ctx.relays.pins;
  return ctx;
}
