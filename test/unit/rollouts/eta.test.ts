import assert from 'node:assert/strict';
import { decide } from '../../../controller/src/rollouts/decide.js';
import { estimate } from '../../../controller/src/rollouts/eta.js';
import { apply, model, world } from './model-helpers.js';

describe('rollout ETA', () => {
  it('is unknown until a host finished, then mean × batches left plus waits', () => {
    const r = model([1, 4], { maxConcurrency: { count: 2 }, waitMs: 10_000 });
    apply(r, decide(r, world({ now: 0 })), 0);
    apply(r, decide(r, world({ now: 0 })), 0);
    assert.equal(estimate(r, 0).ms, null);
    r.hosts[0]!.state = 'succeeded';
    r.hosts[0]!.finishedAt = 60_000;
    // wave 2: 4 hosts × 60 s over 2 at a time = 120 s, plus the 10 s wait.
    assert.equal(estimate(r, 60_000).ms, 130_000);
  });
  it('stops at an approval gate and says so; unknown while paused', () => {
    const r = model([1, 1], { approval: true });
    apply(r, decide(r, world({ now: 0 })), 0);
    apply(r, decide(r, world({ now: 0 })), 0);
    r.hosts[0]!.state = 'succeeded';
    r.hosts[0]!.finishedAt = 1000;
    assert.deepEqual(estimate(r, 1000), { ms: 0, note: 'until wave 2 is approved' });
    r.paused = true;
    assert.equal(estimate(r, 1000).ms, null);
  });
  it('counts running hosts as partly done', () => {
    const r = model([1, 1]);
    apply(r, decide(r, world({ now: 0 })), 0);
    apply(r, decide(r, world({ now: 0 })), 0);
    r.hosts[0]!.state = 'succeeded';
    r.hosts[0]!.finishedAt = 10_000;
    apply(r, [{ kind: 'begin-wave', wave: 1 }], 10_000);
    apply(r, [{ kind: 'start', agentId: 'h1' }], 10_000);
    assert.equal(estimate(r, 14_000).ms, 6_000);
  });
});
