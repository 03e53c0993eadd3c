/**
 * The rollout state machine's vocabulary, shared by the scheduler, the
 * store and the API.
 *
 * Host states:
 *   prefetching ──▶ ready ──▶ running (step k/n) ──▶ succeeded | failed | cancelled
 *        │            │          ▲
 *        └─▶ pending ─┼──────────┘        (prefetching → pending: offline during prefetch)
 *                     └──▶ skipped (offline: skip) | failed (offline: fail, or staging failed) | cancelled (abort)
 *   failed ──▶ pending (retry: a new attempt with a new job id)
 *
 * Rollout states:
 *   prefetching ──▶ running ⇄ waiting (timer) | awaiting-approval ──▶ succeeded | failed
 *        └─────────────┴──────────────┴──▶ aborting ──▶ aborted
 *   failed ──▶ running (retry)
 * plus an orthogonal `paused` flag: while set no host starts and no wave
 * begins; hosts already running finish.
 *
 * The exact edges, with what causes each, are the tables in transitions.ts
 * (and docs/rollouts.md, "State"); every state change goes through them.
 */
import type { Amount } from './amount.js';
import type { ErrorBudget } from './budget.js';

export type HostState = 'pending' | 'prefetching' | 'ready' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';
export const HOST_STATES: readonly HostState[] = ['pending', 'prefetching', 'ready', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'];
export const HOST_TERMINAL: ReadonlySet<HostState> = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);

export type RolloutState = 'prefetching' | 'running' | 'waiting' | 'awaiting-approval' | 'aborting' | 'succeeded' | 'failed' | 'aborted';
export const ROLLOUT_TERMINAL: ReadonlySet<RolloutState> = new Set(['succeeded', 'failed', 'aborted']);

export type OnFailure = 'pause' | 'abort' | 'continue';
export type OfflinePolicy = 'fail' | 'skip';

/** The validated strategy of a rollout (durations in milliseconds). */
export interface Strategy {
  waves: Amount[];
  maxConcurrency: Amount | null;
  errorBudget: ErrorBudget;
  onFailure: OnFailure;
  /** Pause between waves before the next one starts automatically; 0: none. */
  waitMs: number;
  /** Every wave after the first waits for `ferry rollout approve`. */
  approval: boolean;
  /** How long a host of a running wave may be offline before `offline` applies. */
  offlineTimeoutMs: number;
  offline: OfflinePolicy;
  /** Stage the plan's bundles on every target before wave 1. */
  prefetch: boolean;
}

/** One target host of a rollout, as the scheduler sees it. */
export interface HostModel {
  agentId: string;
  hostname: string;
  wave: number;
  /** Position among all targets; hosts start in this order. */
  order: number;
  state: HostState;
  attempt: number;
  /** Host job of the current attempt (set before the start is sent). */
  hostJobId: string | null;
  /** Since when the scheduler wants to start this host (its wave began, or a retry); null before. */
  eligibleAt: number | null;
  message: string;
  startedAt: number | null;
  finishedAt: number | null;
}

/** A rollout's scheduling state (the spec's strategy plus where it is). */
export interface RolloutModel {
  id: string;
  state: RolloutState;
  paused: boolean;
  pauseReason: string;
  currentWave: number;
  /** End of the wait between waves (state `waiting`). */
  gateUntil: number | null;
  waveSizes: number[];
  strategy: Strategy;
  hosts: HostModel[];
}

/** Counts of hosts per state. */
export function countStates(hosts: readonly Pick<HostModel, 'state'>[]): Record<HostState, number> {
  const out = Object.fromEntries(HOST_STATES.map((s) => [s, 0])) as Record<HostState, number>;
  for (const h of hosts) out[h.state]++;
  return out;
}
