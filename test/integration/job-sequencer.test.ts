import { JobHistory } from '../../controller/src/jobs/job-history.js';
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import type { ExecHostFinished } from '../../common/src/gen/ferry/v1/admin.js';
import type { ControllerMessage, JobResult } from '../../common/src/gen/ferry/v1/session.js';
import { ManualClock } from '../../common/src/clock.js';
import { silentLogger } from '../../common/src/log.js';
import { ExecCoordinator } from '../../controller/src/exec/exec-coordinator.js';
import { JobCoordinator } from '../../controller/src/jobs/job-coordinator.js';
import { SessionRegistry, type LiveSession } from '../../controller/src/sessions/registry.js';
import type { Db } from '../../controller/src/store/db.js';
import { migrateStore } from '../../controller/src/store/migrate.js';
import { describeStores } from '../support/stores.js';
import { tempDir, waitFor } from '../support/fixtures.js';

/** An agent's session as the controller sees it, recording what it is sent and the highest ack per job. */
class RecordingSession implements LiveSession {
  readonly sent: ControllerMessage[] = [];
  readonly acks = new Map<string, number>();
  readonly connectedAt = Date.now();
  readonly peerAddress = 'test';
  constructor(readonly agentId: string, readonly hostname = agentId) {}
  send(m: ControllerMessage): void { this.sent.push(m); }
  ack(jobId: string, seq: number): void { this.acks.set(jobId, Math.max(seq, this.acks.get(jobId) ?? 0)); }
  close(): void { /* nothing to close */ }
  starts(): string[] { return this.sent.flatMap((m) => (m.msg?.$case === 'jobStart' ? [m.msg.value.jobId] : [])); }
  cancels(): string[] { return this.sent.flatMap((m) => (m.msg?.$case === 'jobCancel' ? [m.msg.value.jobId] : [])); }
}

const SIGNED = { plan: 'name: p\nsteps: []\n', signature: '', keyId: 'k', file: 'p.yaml' };
type Kind = 'exec' | 'plan';

/** A job started through the kind's own front end (ExecCoordinator / JobCoordinator), observed as its caller sees it. */
interface Started {
  jobId: string;
  /** Sequence numbers of the lines the caller was shown. */
  lines: number[];
  /** How it ended, once it did. */
  end?: { ok: boolean; message: string };
}

describeStores('job sequencer (exec and plan jobs, one rule)', function (store) {
  let dir: string;
  let db: Db;
  let sessions: SessionRegistry;
  let jobs: JobCoordinator;
  let exec: ExecCoordinator;
  let abort: AbortController;
  beforeEach(async () => {
    dir = tempDir('ferry-seq-');
    db = await store.open(dir);
    await migrateStore(db);
    sessions = new SessionRegistry();
    jobs = new JobCoordinator(db, sessions, silentLogger());
    exec = new ExecCoordinator(jobs, new JobHistory(db), silentLogger());
    abort = new AbortController();
  });
  afterEach(async () => {
    abort.abort(); // ends exec runs a test left open (their lost-timers)
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function startJob(kind: Kind, s: RecordingSession): Promise<Started> {
    const out: Started = { jobId: '', lines: [] };
    const before = s.starts().length;
    if (kind === 'exec') {
      void exec.run({ selector: '', hosts: [], all: true, argv: ['true'], timeoutMs: 60_000, concurrency: 0, env: {}, cwd: '' }, 'test', [{ agentId: s.agentId, hostname: s.hostname }], (ev) => {
        if (ev.event?.$case === 'line') out.lines.push(ev.event.value.seq);
        if (ev.event?.$case === 'finished') {
          const f: ExecHostFinished = ev.event.value;
          out.end = { ok: f.exitCode === 0 && !f.error, message: f.error };
        }
      }, abort.signal);
    } else {
      const run = `j-run-${Math.random().toString(36).slice(2)}`;
      await jobs.createJob(run, { planId: 'p', signed: SIGNED, params: {}, bundles: [], check: false, createdBy: 't' });
      await jobs.startHost(run, `${run}-${s.agentId}`, { signed: SIGNED, params: {}, bundles: [], check: false }, { agentId: s.agentId, hostname: s.hostname }, {
        sink: (ev) => { if (ev.event?.$case === 'line') out.lines.push(ev.event.value.seq); },
        done: (r) => { out.end = { ok: r?.status === 'succeeded', message: r?.message ?? '' }; },
      });
    }
    await waitFor(() => s.starts().length > before, 2000, 'start sent');
    out.jobId = s.starts().at(-1)!;
    return out;
  }

  const line = (jobId: string, seq: number) => ({ output: { jobId, seq, stream: 1, line: `line-${seq}`, timeMs: 0 } });
  const result = (kind: Kind, jobId: string, seq: number) => {
    const r: JobResult = { jobId, seq, status: 'succeeded', failedStep: '', message: '', durationMs: 1, changed: 0, unchanged: 0, skipped: 0,
      exit: kind === 'exec' ? { exitCode: 0, signal: '', timedOut: false } : undefined };
    return { result: r };
  };

  /** The session drops and the agent comes back with a new one, saying hello with `open`. */
  async function reconnect(old: RecordingSession, open: string[]): Promise<{ s: RecordingSession; acked: Array<{ jobId: string; seq: number }> }> {
    sessions.detach(old);
    const s = new RecordingSession(old.agentId);
    sessions.attach(s);
    return { s, acked: await jobs.onHello(s.agentId, open) };
  }

  for (const kind of ['exec', 'plan'] as const) {
    it(`applies every message of one ${kind} job delivered concurrently exactly once, in order`, async () => {
      const s = new RecordingSession('a');
      sessions.attach(s);
      const job = await startJob(kind, s);
      const n = 40;
      const deliveries: Array<Promise<unknown>> = [];
      // As a session delivers them: one after the other without waiting for the previous to be held,
      // with every fifth line arriving twice (a resend racing the original).
      for (let seq = 1; seq <= n; seq++) {
        deliveries.push(jobs.onMessage('a', job.jobId, seq, line(job.jobId, seq)));
        if (seq % 5 === 0) deliveries.push(jobs.onMessage('a', job.jobId, seq, line(job.jobId, seq)));
      }
      deliveries.push(jobs.onMessage('a', job.jobId, n + 1, result(kind, job.jobId, n + 1)));
      const settled = await Promise.allSettled(deliveries);
      assert.deepEqual(settled.filter((x) => x.status === 'rejected'), [], 'no delivery failed');
      const all = Array.from({ length: n }, (_, i) => i + 1);
      assert.deepEqual(job.lines, all, 'every line shown once, in order');
      assert.deepEqual(job.end, { ok: true, message: '' });
      assert.equal(s.acks.get(job.jobId), n + 1, 'everything acknowledged');
      {
        const stored = await db.all<{ seq: number }>('SELECT seq FROM job_events WHERE host_job_id = ? ORDER BY seq', [job.jobId]);
        assert.deepEqual(stored.map((e) => Number(e.seq)), [...all, n + 1], 'every message stored once');
        assert.equal((await jobs.hostJob(job.jobId))?.next_seq, n + 2);
      }
    });

    it(`after a reconnect, acks what it holds of a ${kind} job, drops a resent duplicate and applies what follows`, async () => {
      const first = new RecordingSession('a');
      sessions.attach(first);
      const job = await startJob(kind, first);
      await jobs.onMessage('a', job.jobId, 1, line(job.jobId, 1));
      await jobs.onMessage('a', job.jobId, 2, line(job.jobId, 2));
      const { s, acked } = await reconnect(first, [job.jobId]);
      assert.deepEqual(acked, [{ jobId: job.jobId, seq: 2 }], 'the welcome says what is held');
      assert.deepEqual(s.cancels(), []);
      await jobs.onMessage('a', job.jobId, 2, line(job.jobId, 2)); // resent although held
      assert.equal(s.acks.get(job.jobId), 2, 'the duplicate is acknowledged again');
      await jobs.onMessage('a', job.jobId, 4, line(job.jobId, 4)); // a gap: waits for the resend of 3
      await jobs.onMessage('a', job.jobId, 3, line(job.jobId, 3));
      await jobs.onMessage('a', job.jobId, 4, line(job.jobId, 4));
      await jobs.onMessage('a', job.jobId, 5, result(kind, job.jobId, 5));
      assert.deepEqual(job.lines, [1, 2, 3, 4]);
      assert.deepEqual(job.end, { ok: true, message: '' });
      assert.equal(s.acks.get(job.jobId), 5);
    });

    it(`a running ${kind} job the agent no longer reports is lost, never re-run; late messages are acked and dropped`, async () => {
      const first = new RecordingSession('a');
      sessions.attach(first);
      const job = await startJob(kind, first);
      await jobs.onMessage('a', job.jobId, 1, line(job.jobId, 1));
      const { s, acked } = await reconnect(first, []);
      assert.deepEqual(acked, []);
      assert.equal(job.end?.ok, false);
      assert.match(job.end!.message, /^the agent no longer knows this job/);
      assert.deepEqual(s.starts(), [], 'not sent again');
      await jobs.onMessage('a', job.jobId, 2, line(job.jobId, 2));
      assert.deepEqual(job.lines, [1]);
      assert.equal(s.acks.get(job.jobId), 2, 'the agent may free its buffer');
    });
  }

  it('a job started on the session that is saying hello is on its way: neither lost nor sent twice', async () => {
    const s = new RecordingSession('a');
    sessions.attach(s); // the session is registered before its hello is reconciled
    const plan = await startJob('plan', s);
    const ex = await startJob('exec', s);
    assert.deepEqual(await jobs.onHello('a', []), []);
    assert.equal(plan.end, undefined);
    assert.equal(ex.end, undefined);
    assert.deepEqual(s.starts(), [plan.jobId, ex.jobId]);
  });

  it('cancels a job the agent holds that the controller does not track, whatever its kind', async () => {
    const s = new RecordingSession('a');
    sessions.attach(s);
    const acked = await jobs.onHello('a', ['j-gone-1', 'j-gone-2']);
    assert.deepEqual(acked, []);
    assert.deepEqual(s.cancels(), ['j-gone-1', 'j-gone-2']);
    await jobs.onMessage('a', 'j-gone-1', 7, line('j-gone-1', 7));
    assert.equal(s.acks.get('j-gone-1'), 7, 'acknowledged so the agent frees it');
  });

  it('a start that may not have arrived is sent again, same id, whatever its kind (the agent journals job ids of both kinds and runs none twice)', async () => {
    const first = new RecordingSession('a');
    sessions.attach(first);
    const plan = await startJob('plan', first);
    const ex = await startJob('exec', first);
    const { s } = await reconnect(first, []);
    assert.deepEqual(s.starts(), [plan.jobId, ex.jobId]);
    assert.equal(plan.end, undefined);
    assert.equal(ex.end, undefined);
    // The agent had taken the command on before it restarted: it answers the resent start with a lost result, seq 1.
    await jobs.onMessage('a', ex.jobId, 1, { result: { jobId: ex.jobId, seq: 1, status: 'lost', failedStep: '', message: 'this agent restarted after it took the command on; it is not run again',
      durationMs: 0, changed: 0, unchanged: 0, skipped: 0, exit: { exitCode: -1, signal: '', timedOut: false } } });
    const end = ex.end as Started['end']; // set by the result above (the assertion before narrowed it to undefined)
    assert.equal(end?.ok, false);
    assert.match(end!.message, /not run again/);
    assert.equal((await jobs.hostJob(ex.jobId))?.state, 'lost');
  });

  it('a controller restarted with an exec start undelivered sends it again within the command\'s timeout, never after it (the host would run it late)', async () => {
    const first = new RecordingSession('a');
    sessions.attach(first);
    const ex = await startJob('exec', first); // timeout 60 s
    const createdAt = Number((await db.get<{ created_at: number }>('SELECT created_at FROM jobs WHERE id = (SELECT job_id FROM job_hosts WHERE host_job_id = ?)', [ex.jobId]))!.created_at);
    sessions.detach(first);
    // Two restarted controllers (nothing in memory), one a minute on, one past the timeout and its grace.
    for (const [after, resent] of [[60_000, true], [90_001, false]] as const) {
      const later = new SessionRegistry();
      const restarted = new JobCoordinator(db, later, silentLogger(), undefined, new ManualClock(createdAt + after));
      const s = new RecordingSession('a');
      later.attach(s);
      await restarted.onHello('a', []);
      assert.deepEqual(s.starts(), resent ? [ex.jobId] : [], `${after} ms after the start`);
    }
    assert.equal((await jobs.hostJob(ex.jobId))?.state, 'lost', 'given up on past the timeout');
  });

  it('an exec job started on one replica for a host on another is delivered by that replica\'s mailbox and followed back in order, once', async () => {
    const sessionsY = new SessionRegistry();
    const y = new JobCoordinator(db, sessionsY, silentLogger());
    jobs.connectedElsewhere = async () => new Set(['r']);
    const sy = new RecordingSession('r');
    sessionsY.attach(sy);
    const out: Started = { jobId: '', lines: [] };
    void exec.run({ selector: '', hosts: [], all: true, argv: ['true'], timeoutMs: 60_000, concurrency: 0, env: { A: '1' }, cwd: '/tmp' }, 'test', [{ agentId: 'r', hostname: 'r' }], (ev) => {
      if (ev.event?.$case === 'line') out.lines.push(ev.event.value.seq);
      if (ev.event?.$case === 'started') out.jobId = ev.event.value.jobId;
      if (ev.event?.$case === 'finished') out.end = { ok: ev.event.value.exitCode === 0 && !ev.event.value.error, message: ev.event.value.error };
    }, abort.signal);
    await waitFor(async () => out.jobId !== '' && (await jobs.hostJob(out.jobId)) !== undefined, 2000, 'host job recorded');
    // Replica Y's mailbox finds the dispatched row of an agent connected to it: it rebuilds the exec start from the store.
    assert.equal(await y.sequencer.deliver(out.jobId), true);
    const start = sy.sent.find((m) => m.msg?.$case === 'jobStart')?.msg;
    assert.ok(start?.$case === 'jobStart');
    assert.deepEqual(start.value.exec, { argv: ['true'], timeoutMs: 60_000, env: { A: '1' }, cwd: '/tmp' });
    assert.equal(await y.sequencer.deliver(out.jobId), false, 'not sent twice to the same session');
    for (let seq = 1; seq <= 5; seq++) await y.onMessage('r', out.jobId, seq, line(out.jobId, seq));
    await y.onMessage('r', out.jobId, 6, result('exec', out.jobId, 6));
    await jobs.sequencer.follow();
    assert.deepEqual(out.lines, [1, 2, 3, 4, 5]);
    assert.deepEqual(out.end, { ok: true, message: '' });
  });

  it('a plan run\'s per-host timeout runs on the injected clock: the cancel at the timeout, given up as lost after the grace', async () => {
    const clock = new ManualClock();
    const timed = new JobCoordinator(db, sessions, silentLogger(), undefined, clock);
    const s = new RecordingSession('t');
    sessions.attach(s);
    const events: string[] = [];
    const run = timed.run({ planId: 'p', signed: SIGNED, params: {}, bundles: [], check: false, concurrency: 0, createdBy: 't', timeoutMs: 60_000 },
      [{ agentId: 't', hostname: 't' }], (ev) => { if (ev.event?.$case === 'result') events.push(ev.event.value.status); }, abort.signal);
    await waitFor(() => s.starts().length === 1, 2000, 'start sent');
    const jobId = s.starts()[0]!;
    clock.advance(59_999);
    assert.deepEqual(s.cancels(), [], 'no cancel before the timeout');
    clock.advance(1);
    assert.deepEqual(s.cancels(), [jobId], 'cancelled at the timeout');
    clock.advance(29_999);
    assert.deepEqual(events, [], 'still waiting for the host within the grace');
    clock.advance(1);
    const summary = await run;
    assert.deepEqual(events, ['lost']);
    assert.deepEqual({ failed: summary.failed, succeeded: summary.succeeded }, { failed: 1, succeeded: 0 });
    assert.equal(clock.pending(), 0, 'no timer left behind');
  });

  it('a plan job\'s message ahead of what this replica holds is applied when the store shows another replica held the ones between (the agent moved while its old session still wrote)', async () => {
    const sessionsY = new SessionRegistry();
    const y = new JobCoordinator(db, sessionsY, silentLogger());
    const s = new RecordingSession('m');
    sessions.attach(s);
    const job = await startJob('plan', s);
    for (let seq = 1; seq <= 3; seq++) await jobs.onMessage('m', job.jobId, seq, line(job.jobId, seq));
    // The agent opens a session on replica Y and says hello there: Y reads the job from the store (next: 4).
    const sy = new RecordingSession('m');
    sessionsY.attach(sy);
    assert.deepEqual(await y.onHello('m', [job.jobId]), [{ jobId: job.jobId, seq: 3 }]);
    // The old session on X still delivers 4 and 5; then 6 arrives on Y.
    for (let seq = 4; seq <= 5; seq++) await jobs.onMessage('m', job.jobId, seq, line(job.jobId, seq));
    await y.onMessage('m', job.jobId, 6, line(job.jobId, 6));
    assert.equal(sy.acks.get(job.jobId), 6, 'Y held 6 (not dropped as a gap)');
    await y.onMessage('m', job.jobId, 7, result('plan', job.jobId, 7));
    const row = await db.get<{ next_seq: number; state: string }>('SELECT next_seq, state FROM job_hosts WHERE host_job_id = ?', [job.jobId]);
    assert.deepEqual({ next: Number(row!.next_seq), state: row!.state }, { next: 8, state: 'succeeded' });
    const seqs = await db.all<{ seq: number }>('SELECT seq FROM job_events WHERE host_job_id = ? ORDER BY seq', [job.jobId]);
    assert.deepEqual(seqs.map((r) => Number(r.seq)), [1, 2, 3, 4, 5, 6, 7], 'each message held once');
  });
});
