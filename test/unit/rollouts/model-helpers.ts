import type { Action, World } from '../../../controller/src/rollouts/decide.js';
import type { HostModel, HostState, RolloutModel, Strategy } from '../../../controller/src/rollouts/model.js';
import { DEFAULT_STRATEGY } from '../../../controller/src/rollouts/spec.js';
import { assignWaves } from '../../../controller/src/rollouts/waves.js';

/** A rollout model over hosts h0..h(n-1) in waves of `sizes`, all pending, before wave 1. */
export function model(sizes: number[], strategy: Partial<Strategy> = {}): RolloutModel {
  const waves = assignWaves(sizes);
  const hosts: HostModel[] = waves.map((wave, i) => ({
    agentId: `h${i}`, hostname: `h${i}`, wave, order: i, state: 'pending', attempt: 1, hostJobId: null,
    eligibleAt: null, message: '', startedAt: null, finishedAt: null,
  }));
  return { id: 'ro-test', state: 'running', paused: false, pauseReason: '', currentWave: -1, gateUntil: null, waveSizes: sizes, strategy: { ...DEFAULT_STRATEGY, ...strategy }, hosts };
}

export function world(opts: Omit<Partial<World>, 'busy'> & { offline?: string[]; busy?: Record<string, string>; since?: number; downAt?: Record<string, number> } = {}): World {
  return {
    now: opts.now ?? 1_000_000,
    offlineSince: opts.offlineSince ?? ((id) => opts.downAt?.[id] ?? opts.since ?? 0),
    connected: opts.connected ?? ((id) => !(opts.offline ?? []).includes(id)),
    busy: (id) => opts.busy?.[id],
  };
}

/** Applies actions the way the scheduler does (without a store), for multi-step scenarios. */
export function apply(r: RolloutModel, actions: Action[], now = 1_000_000): void {
  for (const a of actions) {
    const h = 'agentId' in a ? r.hosts.find((x) => x.agentId === a.agentId)! : undefined;
    switch (a.kind) {
      case 'start': h!.state = 'running'; h!.startedAt = now; break;
      case 'hold': h!.message = a.message; break;
      case 'offline': h!.state = a.to; h!.message = a.message; break;
      case 'begin-wave':
        r.currentWave = a.wave; r.state = 'running'; r.gateUntil = null;
        for (const x of r.hosts) if (x.wave === a.wave) x.eligibleAt = now;
        break;
      case 'gate': r.state = a.approval ? 'awaiting-approval' : 'waiting'; r.gateUntil = a.until; break;
      case 'finish': r.state = a.state; break;
    }
  }
}

export function finishHost(r: RolloutModel, id: string, state: HostState, now = 1_000_000): void {
  const h = r.hosts.find((x) => x.agentId === id)!;
  h.state = state;
  h.finishedAt = now;
}

export const kinds = (as: Action[]): string[] => as.map((a) => ('agentId' in a ? `${a.kind}:${a.agentId}` : a.kind === 'begin-wave' ? `begin-wave:${a.wave}` : a.kind === 'finish' ? `finish:${a.state}` : a.kind));
