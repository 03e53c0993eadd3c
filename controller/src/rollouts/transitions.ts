/**
 * The rollout state machine as data: every legal change of a rollout's
 * state and of a host's state, each labelled with what causes it. The
 * scheduler, the operator controls and the prefetch phase change states
 * only through `rolloutTransition` and `hostTransition`, so a change the
 * diagram (docs/rollouts.md, "State") does not allow is refused with a
 * FerryError instead of silently corrupting a rollout.
 */
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { HostModel, HostState, RolloutModel, RolloutState } from './model.js';

/** What moves a rollout from one state to another. */
export type RolloutCause = 'prefetched' | 'begin-wave' | 'gate' | 'approve' | 'finish' | 'abort' | 'stopped' | 'retry';

/** What moves a host from one state to another. */
export type HostCause = 'staged' | 'stage-failed' | 'offline' | 'start' | 'result' | 'abort' | 'abandon' | 'retry';

type Edge<S, C> = readonly [from: S, cause: C, to: S];

const LIVE: readonly RolloutState[] = ['prefetching', 'running', 'waiting', 'awaiting-approval'];

/** Every legal rollout transition: [from, cause, to]. */
export const ROLLOUT_TRANSITIONS: ReadonlyArray<Edge<RolloutState, RolloutCause>> = [
  ['prefetching', 'prefetched', 'running'],
  ['running', 'begin-wave', 'running'],
  ['waiting', 'begin-wave', 'running'],
  ['running', 'gate', 'waiting'],
  ['running', 'gate', 'awaiting-approval'],
  ['waiting', 'approve', 'running'],
  ['awaiting-approval', 'approve', 'running'],
  ['running', 'finish', 'succeeded'],
  ['running', 'finish', 'failed'],
  ...LIVE.map((s) => [s, 'abort', 'aborting'] as const),
  ['aborting', 'stopped', 'aborted'],
  ['failed', 'retry', 'running'],
];

/** Every legal host transition: [from, cause, to]. */
export const HOST_TRANSITIONS: ReadonlyArray<Edge<HostState, HostCause>> = [
  ['prefetching', 'staged', 'ready'],
  ['prefetching', 'stage-failed', 'failed'],
  // Offline during prefetch (or the phase was interrupted): its job stages the bundles when its wave runs.
  ['prefetching', 'offline', 'pending'],
  ['pending', 'start', 'running'],
  ['ready', 'start', 'running'],
  ['pending', 'offline', 'skipped'],
  ['pending', 'offline', 'failed'],
  ['ready', 'offline', 'skipped'],
  ['ready', 'offline', 'failed'],
  ['prefetching', 'abort', 'cancelled'],
  ['pending', 'abort', 'cancelled'],
  ['ready', 'abort', 'cancelled'],
  ['running', 'result', 'succeeded'],
  ['running', 'result', 'failed'],
  ['running', 'result', 'cancelled'],
  ['running', 'abandon', 'cancelled'],
  ['failed', 'retry', 'pending'],
];

function allowed<S, C>(edges: ReadonlyArray<Edge<S, C>>, from: S, cause: C, to: S): boolean {
  return edges.some(([f, c, t]) => f === from && c === cause && t === to);
}

function fromStates<S, C>(edges: ReadonlyArray<Edge<S, C>>, cause: C): S[] {
  return [...new Set(edges.filter(([, c]) => c === cause).map(([f]) => f))];
}

const HINT = 'the rollout and host states and what moves them are listed in docs/rollouts.md ("State")';

/** Moves rollout `m` to `to` because of `cause`, or refuses with a FerryError when the diagram has no such edge. */
export function rolloutTransition(m: RolloutModel, cause: RolloutCause, to: RolloutState): void {
  if (!allowed(ROLLOUT_TRANSITIONS, m.state, cause, to)) {
    throw new FerryError(ErrorCode.InvalidArgument,
      `rollout ${m.id} is ${m.state}${m.paused ? ' (paused)' : ''}: ${cause} cannot move it to ${to} (${cause} applies to a rollout that is ${fromStates(ROLLOUT_TRANSITIONS, cause).join(' or ')})`,
      HINT);
  }
  m.state = to;
  // Stopping or ending clears a pause: nothing is left to hold back.
  if (to === 'aborting' || to === 'succeeded' || to === 'failed' || to === 'aborted') m.paused = false;
}

/** Moves host `h` of rollout `rolloutId` to `to` because of `cause`, or refuses with a FerryError. */
export function hostTransition(rolloutId: string, h: HostModel, cause: HostCause, to: HostState): void {
  if (!allowed(HOST_TRANSITIONS, h.state, cause, to)) {
    throw new FerryError(ErrorCode.InvalidArgument,
      `host ${h.hostname} of rollout ${rolloutId} is ${h.state}: ${cause} cannot move it to ${to} (${cause} applies to a host that is ${fromStates(HOST_TRANSITIONS, cause).join(' or ')})`,
      HINT);
  }
  h.state = to;
}

/**
 * Sets or clears the orthogonal `paused` flag. Only a live rollout can be
 * paused (an aborting one is already stopping); only a paused one resumed.
 */
export function setPaused(m: RolloutModel, paused: boolean, reason: string): void {
  if (paused && !LIVE.includes(m.state)) {
    throw new FerryError(ErrorCode.InvalidArgument, `rollout ${m.id} is ${m.state}: there is nothing to pause`, HINT);
  }
  if (!paused && !m.paused) {
    throw new FerryError(ErrorCode.InvalidArgument, `rollout ${m.id} is not paused`, `pause it with \`ferry rollout pause ${m.id}\``);
  }
  m.paused = paused;
  m.pauseReason = paused ? reason : '';
}
