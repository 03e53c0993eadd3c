/**
 * Agents for tests of several replicas: each started with its state's whole
 * address list, so it dials the replica its id points at (session-loop.ts
 * spreadIndex), as a real fleet does.
 */
import { silentLogger } from '../../common/src/log.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import type { Controller } from '../../controller/src/controller.js';
import { enrollAgent, fakeFacts, tempDir, waitFor, type TestAgent } from './fixtures.js';

/** The index in `cs` of the running replica holding `agentId`'s session, or -1. */
export function holdingReplica(cs: Controller[], agentId: string): number {
  return cs.findIndex((c) => c.state === 'running' && c.ctx.sessions.get(agentId));
}

/**
 * Enrolls `count` agents named `${prefix}-N` (through the replicas in turn)
 * into `agents`, connected; with `eachReplica`, more until every replica
 * holds at least that many (an agent's first address follows from its
 * random id, so a few agents can all land on one replica).
 */
export async function enrollOverReplicas(cs: Controller[], agents: TestAgent[], o: { prefix: string; count: number; labels?: Record<string, string>; eachReplica?: number }): Promise<void> {
  const spread = () => cs.every((_, k) => agents.filter((a) => holdingReplica(cs, a.id) === k).length >= (o.eachReplica ?? 0));
  for (let i = 0; i < o.count || (!spread() && i < o.count + 16); i++) {
    const a = await enrollAgent(cs[i % cs.length]!, `${o.prefix}-${i}`, { start: false, labels: o.labels ?? {} });
    a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts(`${o.prefix}-${i}`), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
    a.loop.start();
    agents.push(a);
    if (i >= o.count - 1) await waitFor(() => agents.every((x) => holdingReplica(cs, x.id) >= 0), 10_000, 'every agent connected');
  }
}
