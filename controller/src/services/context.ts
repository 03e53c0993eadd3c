import type { ControllerStatusResponse } from '../../../common/src/gen/ferry/v1/admin.js';
import type { Logger } from '../../../common/src/log.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { PrefetchCoordinator } from '../bundles/prefetch.js';
import type { JobCoordinator } from '../jobs/job-coordinator.js';
import type { RolloutCommands } from '../rollouts/rollout-commands.js';
import type { JobHistory } from '../jobs/job-history.js';
import type { PlanStore } from '../plans/plan-store.js';
import type { RolloutScheduler } from '../rollouts/scheduler.js';
import type { ControllerConfig } from '../config.js';
import type { ExecCoordinator } from '../exec/exec-coordinator.js';
import type { CertificateAuthority } from '../pki/ca.js';
import type { AgentUpgradeStore } from '../store/agent-upgrades.js';
import type { AgentStore } from '../store/agents.js';
import type { AuditLog } from '../store/audit.js';
import type { Db } from '../store/db.js';
import type { ControllerMetrics } from '../metrics/metrics.js';
import type { TokenStore } from '../store/tokens.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { RegistryStore } from '../registry/registry-store.js';
import type { RelayDirectory } from '../relays/relay-directory.js';

/** Everything the gRPC services share; built once by the controller at start. */
export interface ControllerContext {
  config: ControllerConfig;
  log: Logger;
  ca: CertificateAuthority;
  db: Db;
  tokens: TokenStore;
  agents: AgentStore;
  /** Agent self-upgrade outcomes per host, as reported. */
  agentUpgrades: AgentUpgradeStore;
  audit: AuditLog;
  sessions: SessionRegistry;
  exec: ExecCoordinator;
  bundles: BundleStore;
  prefetch: PrefetchCoordinator;
  jobs: JobCoordinator;
  /** Every exec and plan run, for `ferry jobs`. */
  history: JobHistory;
  plans: PlanStore;
  /** Staged rollouts (controller/src/rollouts/). */
  rollouts: RolloutScheduler;
  /** With several replicas: rollout changes asked here while another replica runs the scheduler (rollouts/rollout-commands.ts). */
  rolloutCommands?: RolloutCommands;
  /** What is published on the registry and files repository (docs/registry.md). */
  registry: RegistryStore;
  /** Site relays: the store and the assignments pushed to hosts (docs/relays.md). */
  relays: RelayDirectory;
  /** What the parts report for /metrics (metrics/metrics.ts); hand each part only the interface it uses. */
  metrics: ControllerMetrics;
  /** Addresses agents should dial, written into join strings. */
  joinAddresses(): string[];
  /** The replicas on this store, the scheduler lease and sessions per replica (`ferry controller status`). */
  status(): Promise<ControllerStatusResponse>;
  /** The web console's base URL (https://HOST:PORT), or undefined when it is off (controller/src/console/). */
  consoleUrl?: () => string | undefined;
}
