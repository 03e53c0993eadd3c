/**
 * What a SessionLoop (session-loop.ts) is started with and the states it
 * reports. Apart from the loop so that callers that only configure or watch
 * a session (the CLI, the bench fleet, tests) read the contract without the
 * connection machinery.
 */
import type { HostFacts } from '../../../common/src/gen/ferry/v1/common.js';
import type { FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import type { StepSchema } from '../../../common/src/plan/step-schema.js';
import type { StepExecutor } from '../steps/step.js';
import type { AgentState } from '../state/agent-state.js';
import type { UpgradeHost } from '../upgrade/upgrade-host.js';
import type { Backoff } from './backoff.js';

/** Where a session is in its life, as reported through `onState`. */
export type SessionState = 'idle' | 'reauthenticating' | 'connecting' | 'connected' | 'backoff' | 'stopping' | 'stopped';

/** What a SessionLoop is started with. */
export interface SessionOptions {
  state: AgentState;
  facts: () => Promise<HostFacts>;
  log: Logger;
  backoff?: Backoff;
  /** Renew when less than this fraction of the certificate's lifetime remains. */
  renewAtFraction?: number;
  onState?: (s: SessionState, detail: { controller: string; error?: FerryError }) => void;
  /** Root for step executors' absolute paths (tests); "/" on a real host. */
  root?: string;
  /** Cap on bundle bytes per second (0 = unlimited). */
  bandwidthBytesPerSec?: number;
  executors?: ReadonlyMap<string, StepExecutor<unknown>>;
  schemas?: ReadonlyMap<string, StepSchema<unknown>>;
  /** systemd and the binary, for committing a self-upgrade (tests pass a fake). */
  upgradeHost?: UpgradeHost;
  /** Relays (docs/relays.md): stall timeout and how long a failed relay is skipped. */
  relayStallMs?: number;
  relayDownMs?: number;
  /** How often a relay reports its counters (default 5 s). */
  relayStatusEveryMs?: number;
  /** The settings' upgrade-window (the controller may set another per upgrade). */
  upgradeWindowMs?: number;
}
