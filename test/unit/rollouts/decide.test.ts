import assert from 'node:assert/strict';
import { decide } from '../../../controller/src/rollouts/decide.js';
import { apply, finishHost, kinds, model, world } from './model-helpers.js';

describe('rollout scheduling decisions', () => {
  it('begins wave 1 first, then starts its hosts', () => {
    const r = model([1, 2]);
    const w = world();
    assert.deepEqual(kinds(decide(r, w)), ['begin-wave:0']);
    apply(r, decide(r, w));
    assert.deepEqual(kinds(decide(r, w)), ['start:h0']);
  });
  it('does not start the next wave until every host of the current one is finished', () => {
    const r = model([1, 2]);
    apply(r, decide(r, world()));
    apply(r, decide(r, world()));
    assert.deepEqual(kinds(decide(r, world())), []);
    finishHost(r, 'h0', 'succeeded');
    assert.deepEqual(kinds(decide(r, world())), ['begin-wave:1']);
    apply(r, decide(r, world()));
    assert.deepEqual(kinds(decide(r, world())), ['start:h1', 'start:h2']);
  });
  it('caps hosts running at once at maxConcurrency of the wave', () => {
    const r = model([5], { maxConcurrency: { count: 2 } });
    apply(r, decide(r, world()));
    assert.deepEqual(kinds(decide(r, world())), ['start:h0', 'start:h1']);
    apply(r, decide(r, world()));
    assert.deepEqual(kinds(decide(r, world())), []);
    finishHost(r, 'h0', 'failed');
    assert.deepEqual(kinds(decide(r, world())), ['start:h2']);
  });
  it('pause during a wave: nothing new starts, running hosts are left alone, resume continues', () => {
    const r = model([4], { maxConcurrency: { count: 2 } });
    apply(r, decide(r, world()));
    apply(r, decide(r, world()));
    r.paused = true;
    finishHost(r, 'h0', 'succeeded');
    assert.deepEqual(decide(r, world()), []);
    assert.equal(r.hosts[1]!.state, 'running');
    r.paused = false;
    assert.deepEqual(kinds(decide(r, world())), ['start:h2']);
  });
  it('pause at a wave boundary holds the next wave', () => {
    const r = model([1, 1]);
    apply(r, decide(r, world()));
    apply(r, decide(r, world()));
    finishHost(r, 'h0', 'succeeded');
    r.paused = true;
    assert.deepEqual(decide(r, world()), []);
  });
  it('waits between waves when told to, then begins the next', () => {
    const r = model([1, 1], { waitMs: 30_000 });
    apply(r, decide(r, world()));
    apply(r, decide(r, world()));
    finishHost(r, 'h0', 'succeeded');
    const gate = decide(r, world({ now: 1_000_000 }));
    assert.deepEqual(gate, [{ kind: 'gate', approval: false, until: 1_030_000 }]);
    apply(r, gate);
    assert.deepEqual(decide(r, world({ now: 1_029_999 })), []);
    assert.deepEqual(kinds(decide(r, world({ now: 1_030_000 }))), ['begin-wave:1']);
  });
  it('waits for approval between waves and never begins the next by itself', () => {
    const r = model([1, 1], { approval: true, waitMs: 1 });
    apply(r, decide(r, world()));
    apply(r, decide(r, world()));
    finishHost(r, 'h0', 'succeeded');
    apply(r, decide(r, world()));
    assert.equal(r.state, 'awaiting-approval');
    assert.deepEqual(decide(r, world({ now: 9e12 })), []);
  });
  it('finishes succeeded when every host succeeded or was skipped, failed when any failed', () => {
    const ok = model([2]);
    apply(ok, decide(ok, world()));
    apply(ok, decide(ok, world()));
    finishHost(ok, 'h0', 'succeeded');
    finishHost(ok, 'h1', 'skipped');
    assert.deepEqual(kinds(decide(ok, world())), ['finish:succeeded']);
    const bad = model([2], { errorBudget: { perWave: null, total: { count: 5 } } });
    apply(bad, decide(bad, world()));
    apply(bad, decide(bad, world()));
    finishHost(bad, 'h0', 'succeeded');
    finishHost(bad, 'h1', 'failed');
    assert.deepEqual(kinds(decide(bad, world())), ['finish:failed']);
  });
  it('holds an offline host until offlineTimeout, then fails it (offline: fail) before judging the wave', () => {
    const r = model([2], { offlineTimeoutMs: 60_000 });
    apply(r, decide(r, world({ now: 0 })), 0);
    const early = decide(r, world({ now: 59_999, offline: ['h1'] }));
    assert.deepEqual(kinds(early), ['start:h0', 'hold:h1']);
    assert.match((early[1] as { message: string }).message, /offline: waiting up to 1m/);
    apply(r, early, 59_999);
    finishHost(r, 'h0', 'succeeded');
    const late = decide(r, world({ now: 60_000, offline: ['h1'] }));
    assert.deepEqual(late.map((a) => a.kind === 'offline' && a.to), ['failed']);
    apply(r, late);
    assert.deepEqual(kinds(decide(r, world({ now: 60_000, offline: ['h1'] }))), ['finish:failed']);
  });
  it('skips offline hosts with offline: skip, and the rollout still succeeds', () => {
    const r = model([1], { offlineTimeoutMs: 0, offline: 'skip' });
    apply(r, decide(r, world()));
    const a = decide(r, world({ offline: ['h0'] }));
    assert.deepEqual(a.map((x) => x.kind === 'offline' && x.to), ['skipped']);
    apply(r, a);
    assert.deepEqual(kinds(decide(r, world())), ['finish:succeeded']);
  });
  it('counts offline time only since the controller started (a restart does not time hosts out at once)', () => {
    const r = model([1], { offlineTimeoutMs: 60_000 });
    apply(r, decide(r, world({ now: 0 })), 0);
    assert.deepEqual(kinds(decide(r, world({ now: 100_000, since: 90_000, offline: ['h0'] }))), ['hold:h0']);
  });
  it('counts offline time from the disconnect: a host that waited long for a slot is not failed by a brief drop', () => {
    const r = model([3], { maxConcurrency: { count: 1 }, offlineTimeoutMs: 60_000 });
    apply(r, decide(r, world({ now: 0 })), 0);
    apply(r, decide(r, world({ now: 0 })), 0);
    finishHost(r, 'h0', 'succeeded');
    // h1 has been eligible for 10 minutes; its agent dropped 5 s ago.
    assert.deepEqual(kinds(decide(r, world({ now: 600_000, offline: ['h1'], downAt: { h1: 595_000 } }))), ['hold:h1', 'start:h2']);
    assert.deepEqual(decide(r, world({ now: 655_000, offline: ['h1'], downAt: { h1: 595_000 } })).map((a) => a.kind), ['offline', 'start']);
  });
  it('an offline host does not take a concurrency slot', () => {
    const r = model([3], { maxConcurrency: { count: 1 } });
    apply(r, decide(r, world()));
    assert.deepEqual(kinds(decide(r, world({ offline: ['h0'] }))), ['hold:h0', 'start:h1']);
  });
  it('a host busy with another rollout waits and is not started (serialised per host)', () => {
    const r = model([2]);
    apply(r, decide(r, world()));
    const a = decide(r, world({ busy: { h0: 'waiting for rollout ro-other on this host' } }));
    assert.deepEqual(kinds(a), ['hold:h0', 'start:h1']);
  });
  it('runs a retried host of an earlier wave again in its own place', () => {
    const r = model([1, 1]);
    apply(r, decide(r, world()));
    apply(r, decide(r, world()));
    finishHost(r, 'h0', 'succeeded');
    apply(r, decide(r, world()));
    apply(r, decide(r, world()));
    r.hosts[0]!.state = 'pending';
    assert.deepEqual(kinds(decide(r, world())), ['start:h0']);
  });
  it('aborting waits for running hosts, then finishes aborted', () => {
    const r = model([2]);
    apply(r, decide(r, world()));
    apply(r, decide(r, world()));
    r.state = 'aborting';
    assert.deepEqual(decide(r, world()), []);
    finishHost(r, 'h0', 'cancelled');
    finishHost(r, 'h1', 'succeeded');
    assert.deepEqual(kinds(decide(r, world())), ['finish:aborted']);
  });
  it('does nothing while prefetching or when finished', () => {
    const r = model([2]);
    r.state = 'prefetching';
    assert.deepEqual(decide(r, world()), []);
    r.state = 'succeeded';
    assert.deepEqual(decide(r, world()), []);
  });
});
