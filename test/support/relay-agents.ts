/**
 * Agents for the relay tests (relays.test.ts, relay-warm.test.ts): a real
 * session loop with the relay timings a test needs, staging a bundle
 * directly, and the controller's own chunk counter.
 */
import { bundleId } from '../../common/src/bundle/manifest.js';
import type { BundleProgress } from '../../common/src/gen/ferry/v1/session.js';
import { silentLogger } from '../../common/src/log.js';
import type { Controller } from '../../controller/src/controller.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import type { MemBundle } from './bundles.js';
import { enrollAgent, fakeFacts, tempDir, type TestAgent } from './fixtures.js';

/** Chunks.Fetch messages the controller has sent so far (its /metrics counter). */
export async function controllerChunks(c: Controller): Promise<number> {
  const m = await c.metrics.registry.getSingleMetric('ferry_chunks_served_total')!.get();
  return m.values.reduce((n, v) => n + v.value, 0);
}

/** A started session for an enrolled agent, with the relay timings a test needs. */
export function restart(a: TestAgent, opts: { bandwidthBytesPerSec?: number } = {}): TestAgent {
  a.loop = new SessionLoop({
    state: a.state, facts: async () => fakeFacts(a.hostname), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-'),
    relayStallMs: 2_000, relayDownMs: 60_000, relayStatusEveryMs: 200, ...opts,
  });
  a.loop.start();
  return a;
}

export async function enroll(c: Controller, name: string, labels: Record<string, string>, opts: { bandwidthBytesPerSec?: number } = {}): Promise<TestAgent> {
  return restart(await enrollAgent(c, name, { labels, start: false }), opts);
}

/** Stages `b` on `a` directly (as a prefetch would); resolves with the last progress report. */
export async function stage(a: TestAgent, b: MemBundle, onProgress: (p: BundleProgress) => void = () => undefined): Promise<BundleProgress> {
  let last: BundleProgress | undefined;
  await a.loop.work.stager.stage({ bundleId: bundleId(b.signed), signed: b.signed }, (p) => { last = p; onProgress(p); });
  return last!;
}

/** Bytes of the bundle's distinct chunks. */
export function uniqueBytes(b: MemBundle): number {
  let n = 0;
  for (const d of b.chunks.values()) n += d.length;
  return n;
}
