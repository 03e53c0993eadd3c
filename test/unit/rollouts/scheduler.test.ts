import assert from 'node:assert/strict';
import { abortRollout, approveRollout, pauseRollout, resumeRollout } from '../../../controller/src/rollouts/controls.js';
import { FakeController } from './fake-controller.js';

const SPEC = (strategy: string) => `plan: p\ntargets: { selector: role=edge }\nstrategy: ${strategy}\n`;

describe('rollout scheduler (real store and job coordinator, fake agents)', () => {
  let f: FakeController;
  afterEach(async () => f.close());

  const model = (id: string) => f.scheduler.get(id)!.model;
  const states = (id: string) => Object.fromEntries(model(id).hosts.map((h) => [h.agentId, h.state]));
  async function stored(id: string) {
    return (await f.scheduler.store.load(id))!.model;
  }

  it('abort during prefetch: the prefetch stops, every host is cancelled, nothing is started', async () => {
    f = new FakeController(['a', 'b', 'c']);
    await f.start();
    const sessions = ['a', 'b', 'c'].map((id) => f.connect(id));
    const r = await f.scheduler.create(SPEC('{ prefetch: true }'), 'r.yaml', 'test');
    await f.flush();
    const id = r.model.id;
    assert.equal(model(id).state, 'prefetching');
    assert.deepEqual(f.prefetch.calls[0]!.targets, ['a', 'b', 'c']);
    f.prefetch.report('a', 'ready');
    await f.flush();
    assert.deepEqual(states(id), { a: 'ready', b: 'prefetching', c: 'prefetching' });
    await abortRollout(f.scheduler, id, 'test', 'changed my mind');
    await f.flush();
    assert.equal(f.prefetch.calls[0]!.signal.aborted, true);
    const m = await stored(id);
    assert.equal(m.state, 'aborted');
    assert.deepEqual(m.hosts.map((h) => h.state), ['cancelled', 'cancelled', 'cancelled']);
    assert.deepEqual(sessions.flatMap((s) => s.starts()), []);
  });

  it('prefetch outcomes: ready hosts wait for their wave, a failed stage counts against the budget (0: pause before wave 1), offline hosts stage on demand', async () => {
    f = new FakeController(['a', 'b', 'c']);
    await f.start();
    ['a', 'b', 'c'].forEach((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{ prefetch: true }'), 'r.yaml', 'test');
    await f.flush();
    f.prefetch.report('a', 'ready');
    f.prefetch.report('b', 'failed', 'not enough disk space');
    f.prefetch.report('c', 'offline');
    f.prefetch.calls[0]!.done();
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
    f = new FakeController(['a', 'b', 'c']);
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
    f = new FakeController(['a', 'b']);
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
    await assert.rejects(approveRollout(f.scheduler, id, 'test'), /not waiting between waves/);
  });

  it('skips hosts offline past offlineTimeout with offline: skip', async () => {
    f = new FakeController(['a', 'b']);
    await f.start();
    const a = f.connect('a');
    const { model: { id } } = await f.scheduler.create(SPEC('{ offlineTimeout: 0s, offline: skip }'), 'r.yaml', 'test');
    await f.flush();
    assert.equal(model(id).hosts[1]!.state, 'skipped');
    await f.result('a', a.starts()[0]!, 'succeeded');
    await f.flush();
    assert.equal((await stored(id)).state, 'succeeded');
  });

  it('after a restart: results recorded while it was down, results arriving later, and undelivered starts all reconcile; nothing runs twice', async () => {
    f = new FakeController(['a', 'b', 'c']);
    await f.start();
    const before = ['a', 'b', 'c'].map((id) => f.connect(id));
    const { model: { id } } = await f.scheduler.create(SPEC('{}'), 'r.yaml', 'test');
    await f.flush();
    const jobs = before.map((s) => s.starts()[0]!);
    assert.equal(jobs.length, 3);
    // c's start never arrived: its row is still "dispatched". a ran a step before the restart.
    await f.ctx.jobs.onMessage('a', jobs[0]!, 1, { step: { jobId: jobs[0]!, seq: 1, stepIndex: 0, stepCount: 1, stepId: 'one', finished: false, status: '', diff: '', message: '', errorCode: '', attempt: 1, resumed: false, durationMs: 0, timeMs: 0 } });
    await f.restart();
    // a finished while the controller was down; its result is recorded before the scheduler re-attaches.
    await f.result('a', jobs[0]!, 'succeeded', 2);
    await f.start();
    await f.flush();
    assert.equal(model(id).hosts[0]!.state, 'succeeded');
    const after = ['a', 'b', 'c'].map((x) => f.connect(x));
    await f.ctx.jobs.onHello('b', [jobs[1]!]);
    await f.ctx.jobs.onHello('c', []);
    await f.flush();
    assert.deepEqual(after[1]!.starts(), [], 'b knows its job: not sent again');
    assert.deepEqual(after[2]!.starts(), [jobs[2]!], 'c never got its start: sent again, same job id (the agent runs a job id once)');
    await f.result('b', jobs[1]!, 'succeeded');
    await f.result('c', jobs[2]!, 'succeeded');
    await f.flush();
    assert.equal((await stored(id)).state, 'succeeded');
  });

  it('a job the agent lost is a failed host with the reason, never re-run', async () => {
    f = new FakeController(['a']);
    await f.start();
    const s = f.connect('a');
    const { model: { id } } = await f.scheduler.create(SPEC('{ errorBudget: 1 }'), 'r.yaml', 'test');
    await f.flush();
    const job = s.starts()[0]!;
    await f.ctx.jobs.onMessage('a', job, 1, { output: { jobId: job, seq: 1, stream: 0, line: 'x', timeMs: 0 } });
    await f.restart();
    await f.start();
    const again = f.connect('a');
    await f.ctx.jobs.onHello('a', []);
    await f.flush();
    const m = await stored(id);
    assert.equal(m.hosts[0]!.state, 'failed');
    assert.match(m.hosts[0]!.message, /^lost: the agent no longer knows this job/);
    assert.deepEqual(again.starts(), []);
    assert.equal(m.state, 'failed');
  });

  it('a host marked running whose start was never recorded (crash between the two writes) is started on restart', async () => {
    f = new FakeController(['a']);
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

  it('abort cancels running hosts, resends the cancel when an offline agent returns, ends aborted when they stop', async () => {
    f = new FakeController(['a', 'b']);
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
