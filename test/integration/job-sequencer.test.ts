import 'reflect-metadata';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JobEvent } from '../../common/src/gen/ferry/v1/admin.js';
import type { ControllerMessage, JobResult } from '../../common/src/gen/ferry/v1/session.js';
import { silentLogger } from '../../common/src/log.js';
import { JobCoordinator } from '../../controller/src/jobs/job-coordinator.js';
import { SessionRegistry, type LiveSession } from '../../controller/src/sessions/registry.js';
import { SqliteDb } from '../../controller/src/store/db.js';
import { tempDir } from '../support/fixtures.js';

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
}

const SIGNED = { plan: 'name: p\nsteps: []\n', signature: '', keyId: 'k', file: 'p.yaml' };

describe('job sequencer', () => {
  let dir: string;
  let db: SqliteDb;
  let sessions: SessionRegistry;
  let jobs: JobCoordinator;
  beforeEach(() => {
    dir = tempDir('ferry-seq-');
    db = new SqliteDb(join(dir, 'ferry.db'));
    db.migrate();
    sessions = new SessionRegistry();
    jobs = new JobCoordinator(db, sessions, silentLogger());
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies every message of one job delivered concurrently exactly once, in order (plan job, stored)', async () => {
    const s = new RecordingSession('a');
    sessions.attach(s);
    await jobs.createJob('j-1', { planId: 'p', signed: SIGNED, params: {}, bundles: [], check: false, createdBy: 't' });
    const seen: number[] = [];
    let result: JobResult | undefined;
    await jobs.startHost('j-1', 'j-1-a', { signed: SIGNED, params: {}, bundles: [], check: false }, { agentId: 'a', hostname: 'a' }, {
      sink: (ev: JobEvent) => { if (ev.event?.$case === 'line') seen.push(ev.event.value.seq); },
      done: (r) => { result = r; },
    });
    const n = 40;
    const deliveries: Array<Promise<unknown>> = [];
    // As a session delivers them: one after the other without waiting for the previous to be stored,
    // with every fifth line arriving twice (a resend racing the original).
    for (let seq = 1; seq <= n; seq++) {
      const output = { jobId: 'j-1-a', seq, stream: 1, line: `line-${seq}`, timeMs: 0 };
      deliveries.push(jobs.onMessage('a', 'j-1-a', seq, { output }));
      if (seq % 5 === 0) deliveries.push(jobs.onMessage('a', 'j-1-a', seq, { output }));
    }
    const r: JobResult = { jobId: 'j-1-a', seq: n + 1, status: 'succeeded', failedStep: '', message: 'ok', durationMs: 1, changed: 0, unchanged: 0, skipped: 0, exit: undefined };
    deliveries.push(jobs.onMessage('a', 'j-1-a', n + 1, { result: r }));
    const settled = await Promise.allSettled(deliveries);
    assert.deepEqual(settled.filter((x) => x.status === 'rejected'), [], 'no delivery failed');

    const stored = await db.all<{ seq: number }>('SELECT seq FROM job_events WHERE host_job_id = ? ORDER BY seq', ['j-1-a']);
    const all = Array.from({ length: n + 1 }, (_, i) => i + 1);
    assert.deepEqual(stored.map((e) => Number(e.seq)), all, 'every message stored once');
    assert.deepEqual(seen, all.slice(0, n), 'every line shown once, in order');
    assert.equal(result?.status, 'succeeded');
    assert.equal((await jobs.hostJob('j-1-a'))?.next_seq, n + 2);
    assert.equal(s.acks.get('j-1-a'), n + 1, 'everything acknowledged');
  });
});
