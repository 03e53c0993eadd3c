import assert from 'node:assert/strict';
import { abortRollout, approveRollout, pauseRollout, resumeRollout } from '../../../controller/src/rollouts/controls.js';
import { listTable, renderFrame } from '../../../controller/src/cli/cmd-rollout-render.js';
import { snapshot } from '../../../controller/src/rollouts/snapshot.js';
import { describeStores } from '../../support/stores.js';
import { RolloutStore } from '../../../controller/src/rollouts/rollout-store.js';
import type { Db } from '../../../controller/src/store/db.js';
import { FakeController } from './fake-controller.js';

const SPEC = (strategy: string) => `plan: p\ntargets: { selector: role=edge }\nstrategy: ${strategy}\n`;

describeStores('rollout scheduler (real store and job coordinator, fake agents)', function (store) {
  let f: FakeController;
  afterEach(async () => f.close());

  const model = (id: string) => f.scheduler.get(id)!.model;
  const states = (id: string) => Object.fromEntries(model(id).hosts.map((h) => [h.agentId, h.state]));
  async function stored(id: string) {
    return (await f.scheduler.store.load(id))!.model;
  }

  it('abort during prefetch: the prefetch stops, every host is cancelled, nothing is started', async () => {
    f = await FakeController.create(['a', 'b', 'c'], store);
    await f.start();
    const sessions = ['a', 'b', 'c'].map((id) => f.connect(id));
    const r = await f.scheduler.create(SPEC('{ prefetch: true }'), 'r.yaml', 'test');
    await f.flush();
    const id = r.model.id;
    assert.equal(model(id).state, 'prefetching');
    assert.deepEqual(f.prefetch.targets(), ['a', 'b', 'c']);
    f.prefetch.report('a', 'ready');
    await f.flush();
    assert.deepEqual(states(id), { a: 'ready', b: 'prefetching', c: 'prefetching' });
    await abortRollout(f.scheduler, id, 'test', 'changed my mind');
    await f.flush();
    assert.deepEqual(f.prefetch.calls.map((c) => c.signal.aborted), [true, true, true]);
    const m = await stored(id);
    assert.equal(m.state, 'aborted');
    assert.deepEqual(m.hosts.map((h) => h.state), ['cancelled', 'cancelled', 'cancelled']);
    assert.deepEqual(sessions.flatMap((s) => s.starts()), []);
  });

  it('prefetch outcomes: ready hosts wait for their wave, a failed stage counts against the budget (0: pause before wave 1), offline hosts stage on demand', async () => {
    f = await FakeController.create(['a', 'b', 'c'], store);
    await f.start();
    ['a', 'b', 'c'].forEach((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{ prefetch: true }'), 'r.yaml', 'test');
    await f.flush();
    f.prefetch.report('a', 'ready');
    f.prefetch.report('b', 'failed', 'not enough disk space');
    f.prefetch.report('c', 'offline');
    await f.flush();
    const m = model(id);
    assert.deepEqual(states(id), { a: 'ready', b: 'failed', c: 'pending' });
    assert.match(m.hosts[1]!.message, /prefetch b:1\.0: not enough disk space/);
    assert.equal(m.state, 'running');
    assert.equal(m.paused, true);
    assert.match(m.pauseReason, /1 of 3 hosts failed, the rollout allows 0/);
    assert.equal(m.currentWave, -1, 'wave 1 did not begin');
  });

  it('pause holds new starts while running hosts finish; resume starts the rest', async () => {
    f = await FakeController.create(['a', 'b', 'c'], store);
    await f.start();
    const s = ['a', 'b', 'c'].map((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{ maxConcurrency: 1 }'), 'r.yaml', 'test');
    await f.flush();
    assert.deepEqual(states(id), { a: 'running', b: 'pending', c: 'pending' });
    await pauseRollout(f.scheduler, id, 'test', '');
    await f.result('a', s[0]!.starts()[0]!, 'succeeded');
    await f.flush();
    assert.deepEqual(states(id), { a: 'succeeded', b: 'pending', c: 'pending' });
    await resumeRollout(f.scheduler, id, 'test');
    await f.flush();
    assert.deepEqual(states(id), { a: 'succeeded', b: 'running', c: 'pending' });
  });

  it('waits for approval between waves; approve begins the next wave', async () => {
    f = await FakeController.create(['a', 'b'], store);
    await f.start();
    const s = ['a', 'b'].map((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{ waves: [1, "100%"], approval: true }'), 'r.yaml', 'test');
    await f.flush();
    await f.result('a', s[0]!.starts()[0]!, 'succeeded');
    await f.flush();
    assert.equal(model(id).state, 'awaiting-approval');
    assert.deepEqual(s[1]!.starts(), []);
    await approveRollout(f.scheduler, id, 'test');
    await f.flush();
    assert.equal(s[1]!.starts().length, 1);
    await assert.rejects(approveRollout(f.scheduler, id, 'test'), /is running: approve cannot move it to running \(approve applies to a rollout that is waiting or awaiting-approval\)/);
  });

  it('waits between waves on the clock: nothing starts before the wait is over, the next wave starts when it is', async () => {
    f = await FakeController.create(['a', 'b'], store);
    await f.start();
    const s = ['a', 'b'].map((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{ waves: [1, "100%"], wait: 30s }'), 'r.yaml', 'test');
    await f.flush();
    await f.result('a', s[0]!.starts()[0]!, 'succeeded');
    await f.flush();
    assert.equal(model(id).state, 'waiting');
    assert.equal(model(id).gateUntil, f.clock.now() + 30_000);
    await f.advance(29_000);
    assert.deepEqual([model(id).state, s[1]!.starts()], ['waiting', []]);
    await f.advance(1000);
    assert.equal(model(id).state, 'running');
    assert.equal(model(id).currentWave, 1);
    assert.equal(s[1]!.starts().length, 1);
  });

  it('skips hosts offline past offlineTimeout with offline: skip (and not a moment before)', async () => {
    f = await FakeController.create(['a', 'b'], store);
    await f.start();
    const a = f.connect('a');
    const { model: { id } } = await f.scheduler.create(SPEC('{ offlineTimeout: 5m, offline: skip }'), 'r.yaml', 'test');
    await f.flush();
    await f.advance(5 * 60_000 - 1000);
    assert.equal(model(id).hosts[1]!.state, 'pending');
    assert.match(model(id).hosts[1]!.message, /^offline: waiting up to 5m/);
    await f.advance(1000);
    assert.equal(model(id).hosts[1]!.state, 'skipped');
    await f.result('a', a.starts()[0]!, 'succeeded');
    await f.flush();
    assert.equal((await stored(id)).state, 'succeeded');
  });

  it('a host that disconnects mid-stage counts as offline: the rollout leaves prefetching, the host waits offlineTimeout, then offline: fail applies', async () => {
    f = await FakeController.create(['a', 'b'], store);
    await f.start();
    const [a, b] = ['a', 'b'].map((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{ prefetch: true, offlineTimeout: 2m, offline: fail, errorBudget: 1 }'), 'r.yaml', 'test');
    await f.flush();
    f.prefetch.report('a', 'ready');
    await f.flush();
    assert.equal(model(id).state, 'prefetching', 'b is still staging');
    f.sessions.detach(b!);
    await f.flush();
    // The coordinator never reports b (it does not watch sessions); the phase does not wait for it.
    assert.equal(model(id).state, 'running');
    assert.equal(model(id).hosts[1]!.state, 'pending');
    assert.match(model(id).hosts[1]!.message, /offline/);
    assert.equal(a!.starts().length, 1, 'wave 1 began for the staged host');
    await f.advance(2 * 60_000 - 1000);
    assert.equal(model(id).hosts[1]!.state, 'pending', 'within offlineTimeout it waits');
    await f.advance(1000);
    assert.equal(model(id).hosts[1]!.state, 'failed');
    assert.match(model(id).hosts[1]!.message, /offline for 2m/);
  });

  it('a host that drops off mid-stage and comes back within offlineTimeout runs in its wave', async () => {
    f = await FakeController.create(['a', 'b'], store);
    await f.start();
    const [, b] = ['a', 'b'].map((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{ prefetch: true, offlineTimeout: 2m, offline: skip }'), 'r.yaml', 'test');
    await f.flush();
    f.sessions.detach(b!);
    f.prefetch.report('a', 'ready');
    await f.advance(60_000);
    assert.equal(model(id).hosts[1]!.state, 'pending');
    const b2 = f.connect('b');
    await f.flush();
    assert.equal(model(id).hosts[1]!.state, 'running');
    assert.equal(b2.starts().length, 1);
  });

  it('wave times: a wave ran until its hosts were done; the approval wait is reported apart; an abort shows cancelled hosts as cancelled', async () => {
    f = await FakeController.create(['a', 'b', 'c'], store);
    await f.start();
    const s = ['a', 'b', 'c'].map((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{ waves: [1, 2, "100%"], approval: true }'), 'r.yaml', 'test');
    await f.flush();
    const t0 = f.clock.now();
    await f.advance(3000);
    await f.result('a', s[0]!.starts()[0]!, 'succeeded');
    await f.flush();
    assert.equal(model(id).state, 'awaiting-approval');
    await f.advance(10 * 60_000); // the operator takes ten minutes to approve
    await approveRollout(f.scheduler, id, 'test');
    await f.flush();
    await f.advance(2000);
    await abortRollout(f.scheduler, id, 'test', 'wrong version');
    await f.result('b', s[1]!.starts()[0]!, 'cancelled');
    await f.flush();
    const r = (await f.scheduler.store.load(id))!;
    const snap = await snapshot(r, f.scheduler.store, f.sessions, f.clock.now());
    assert.deepEqual(snap.waves.map((w) => [w.startedAtMs - t0, w.finishedAtMs - t0]), [[0, 3000], [603_000, 605_000], [-t0, -t0]]);
    assert.deepEqual(snap.waves.map((w) => w.state), ['done', 'aborted', 'cancelled']);
    const frame = renderFrame(snap, f.clock.now()).join('\n');
    assert.match(frame, /wave 1 .* 1\/1 +done +1 succeeded ran 3\.0s, then waited 10m for approval/);
    assert.match(frame, /wave 2 .* 0\/1 +aborted +1 cancelled ran 2\.0s\n/);
    assert.match(frame, /wave 3 .* 0\/1 +cancelled 1 cancelled\n/);
    assert.deepEqual(snap.info!.counts, [{ state: 'succeeded', count: 1 }, { state: 'cancelled', count: 2 }]);
    const ls = listTable([snap.info!], f.clock.now()).split('\n');
    assert.match(ls[0]!, /HOSTS +SUCCEEDED +FAILED +SKIPPED +CANCELLED/);
    assert.match(ls[1]!, new RegExp(`${id} .* aborted +2/3 +3 +1 +0 +0 +2 `));
  });

  it('after a restart: results recorded while it was down, results arriving later, and undelivered starts all reconcile; nothing runs twice', async () => {
    f = await FakeController.create(['a', 'b', 'c'], store);
    await f.start();
    const before = ['a', 'b', 'c'].map((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{}'), 'r.yaml', 'test');
    await f.flush();
    const jobs = before.map((s) => s.starts()[0]!);
    assert.equal(jobs.length, 3);
    // c's start never arrived: its row is still "dispatched". a ran a step before the restart.
    await f.deps.jobs.onMessage('a', jobs[0]!, 1, { step: { jobId: jobs[0]!, seq: 1, stepIndex: 0, stepCount: 1, stepId: 'one', finished: false, status: '', diff: '', message: '', errorCode: '', attempt: 1, resumed: false, durationMs: 0, timeMs: 0 } });
    await f.restart();
    // a finished while the controller was down; its result is recorded before the scheduler re-attaches.
    await f.result('a', jobs[0]!, 'succeeded', 2);
    await f.start();
    await f.flush();
    assert.equal(model(id).hosts[0]!.state, 'succeeded');
    const after = ['a', 'b', 'c'].map((x) => f.connect(x));
    await f.deps.jobs.onHello('b', [jobs[1]!]);
    await f.deps.jobs.onHello('c', []);
    await f.flush();
    assert.deepEqual(after[1]!.starts(), [], 'b knows its job: not sent again');
    assert.deepEqual(after[2]!.starts(), [jobs[2]!], 'c never got its start: sent again, same job id (the agent runs a job id once)');
    await f.result('b', jobs[1]!, 'succeeded');
    await f.result('c', jobs[2]!, 'succeeded');
    await f.flush();
    assert.equal((await stored(id)).state, 'succeeded');
  });

  it('a job the agent lost is a failed host with the reason, never re-run', async () => {
    f = await FakeController.create(['a'], store);
    await f.start();
    const s = f.connect('a');
    const { model: { id } } = await f.scheduler.create(SPEC('{ errorBudget: 1 }'), 'r.yaml', 'test');
    await f.flush();
    const job = s.starts()[0]!;
    await f.deps.jobs.onMessage('a', job, 1, { output: { jobId: job, seq: 1, stream: 0, line: 'x', timeMs: 0 } });
    await f.restart();
    await f.start();
    const again = f.connect('a');
    await f.deps.jobs.onHello('a', []);
    await f.flush();
    const m = await stored(id);
    assert.equal(m.hosts[0]!.state, 'failed');
    assert.match(m.hosts[0]!.message, /^lost: the agent no longer knows this job/);
    assert.deepEqual(again.starts(), []);
    assert.equal(m.state, 'failed');
  });

  it('a host marked running whose start was never recorded (crash between the two writes) is started on restart', async () => {
    f = await FakeController.create(['a'], store);
    await f.start();
    const { model: { id } } = await f.scheduler.create(SPEC('{ offlineTimeout: 1h }'), 'r.yaml', 'test');
    await f.flush();
    await f.restart();
    const h = (await f.scheduler.store.load(id))!.model.hosts[0]!;
    Object.assign(h, { state: 'running', hostJobId: `j-${id}-a-1`, startedAt: Date.now() });
    await f.scheduler.store.saveHosts(id, [h]);
    const s = f.connect('a');
    await f.start();
    await f.flush();
    assert.deepEqual(s.starts(), [`j-${id}-a-1`]);
  });

  it('a host change and its event commit together: when the event cannot be stored, the host is not saved either', async () => {
    f = await FakeController.create(['a', 'b'], store);
    await f.start();
    const { model: { id } } = await f.scheduler.create(SPEC('{ maxConcurrency: 1 }'), 'r.yaml', 'test');
    await f.flush();
    // The store as a scheduler killed between the two writes would leave it: the event insert never happens.
    const refuseEvents = (db: Db): Db => ({
      dialect: db.dialect,
      run: (sql, params) => (/INSERT INTO rollout_events/.test(sql) ? Promise.reject(new Error('killed')) : db.run(sql, params)),
      get: (sql, params) => db.get(sql, params),
      all: (sql, params) => db.all(sql, params),
      exec: (sql) => db.exec(sql),
      tx: (fn) => db.tx((t) => fn(refuseEvents(t))),
      close: () => db.close(),
    });
    const rs = new RolloutStore(refuseEvents(f.db));
    const h = (await rs.load(id))!.model.hosts.find((x) => x.agentId === 'b')!;
    assert.equal(h.state, 'pending');
    const ev = { rolloutId: id, seq: 1_000, at: Date.now(), kind: 'host', agentId: 'b', hostname: 'b', state: 'running', message: '' };
    await assert.rejects(rs.saveHosts(id, [{ ...h, state: 'running', hostJobId: `j-${id}-b-1` }], [ev]), /killed/);
    const after = (await rs.load(id))!.model.hosts.find((x) => x.agentId === 'b')!;
    assert.equal(after.state, 'pending', 'the state change rolled back with its event');
    assert.equal(after.hostJobId, null);
  });

  it('abort cancels running hosts, resends the cancel when an offline agent returns, ends aborted when they stop', async () => {
    f = await FakeController.create(['a', 'b'], store);
    await f.start();
    const a = f.connect('a');
    const b = f.connect('b');
    const { model: { id } } = await f.scheduler.create(SPEC('{}'), 'r.yaml', 'test');
    await f.flush();
    f.sessions.detach(b);
    await abortRollout(f.scheduler, id, 'test', '');
    await f.flush();
    assert.equal(model(id).state, 'aborting');
    assert.deepEqual(a.cancels(), a.starts());
    const b2 = f.connect('b');
    assert.deepEqual(b2.cancels(), b.starts());
    await f.result('a', a.starts()[0]!, 'cancelled');
    await f.result('b', b.starts()[0]!, 'succeeded');
    await f.flush();
    const m = await stored(id);
    assert.equal(m.state, 'aborted');
    assert.deepEqual(m.hosts.map((h) => h.state), ['cancelled', 'succeeded']);
  });
});
