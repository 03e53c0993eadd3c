import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BundleState, type ControllerMessage, type JobResult } from '../../../common/src/gen/ferry/v1/session.js';
import type { PrefetchEvent } from '../../../common/src/gen/ferry/v1/admin.js';
import { silentLogger } from '../../../common/src/log.js';
import { parsePlan } from '../../../common/src/plan/parse.js';
import type { StoredBundle } from '../../../controller/src/bundles/bundle-store.js';
import { JobCoordinator } from '../../../controller/src/jobs/job-coordinator.js';
import { RolloutScheduler } from '../../../controller/src/rollouts/scheduler.js';
import type { ControllerContext } from '../../../controller/src/services/context.js';
import { SessionRegistry, type LiveSession } from '../../../controller/src/sessions/registry.js';
import type { AgentRecord } from '../../../controller/src/store/agents.js';
import { AuditLog } from '../../../controller/src/store/audit.js';
import { SqliteDb } from '../../../controller/src/store/db.js';
import { tempDir } from '../../support/fixtures.js';

const PLAN = `name: p
bundles:
  edge: b:1.0
steps:
  - id: one
    type: exec
    args: { argv: ["true"] }
`;

export const BUNDLE: StoredBundle = {
  id: 'bundle-1', signed: { manifest: '{}', signature: '', keyId: 'k' }, createdAt: 0,
  manifest: { name: 'b', version: '1.0', files: [] } as unknown as StoredBundle['manifest'],
};

/** A prefetch whose outcome per host the test decides. */
export class FakePrefetch {
  calls: Array<{ targets: string[]; sink: (ev: PrefetchEvent) => void; signal: AbortSignal; done: () => void }> = [];
  run(_b: StoredBundle, targets: Array<{ agentId: string }>, sink: (ev: PrefetchEvent) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      this.calls.push({ targets: targets.map((t) => t.agentId), sink, signal, done: resolve });
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }
  /** Reports one host's outcome to the last run. */
  report(agentId: string, state: 'ready' | 'failed' | 'offline', error = ''): void {
    const ev: PrefetchEvent = {
      agentId, hostname: agentId, state: state === 'ready' ? BundleState.BUNDLE_STATE_READY : BundleState.BUNDLE_STATE_FAILED,
      bytesDone: 0, bytesTotal: 0, bytesFetched: 0, error, offline: state === 'offline', final: false,
    };
    this.calls.at(-1)!.sink(ev);
  }
}

/** A connected agent as the controller sees it: records what it is sent. */
export class FakeSession implements LiveSession {
  readonly sent: ControllerMessage[] = [];
  readonly connectedAt = Date.now();
  readonly peerAddress = 'test';
  constructor(readonly agentId: string, readonly hostname = agentId) {}
  send(m: ControllerMessage): void { this.sent.push(m); }
  ack(): void { /* acks are not needed here */ }
  close(): void { /* nothing to close */ }
  starts(): string[] { return this.sent.flatMap((m) => (m.msg?.$case === 'jobStart' ? [m.msg.value.jobId] : [])); }
  cancels(): string[] { return this.sent.flatMap((m) => (m.msg?.$case === 'jobCancel' ? [m.msg.value.jobId] : [])); }
}

function agent(id: string): AgentRecord {
  return { id, hostname: id, labels: { role: 'edge' }, facts: {} as AgentRecord['facts'], agentVersion: '1', tokenId: null, enrolledAt: 0, lastSeenAt: null, revokedAt: null, certSerial: '', certNotAfter: 0, keyFingerprint: null, reauthAllowedAt: null };
}

/**
 * A controller's rollout machinery on a real store (SQLite in a temp dir)
 * and the real job coordinator, with fake agents, prefetch, plans and
 * bundles, so scheduler behaviour is tested without gRPC. `restart()`
 * builds a new coordinator and scheduler on the same store, as a
 * controller restart does.
 */
export class FakeController {
  readonly dir = tempDir('ferry-sched-');
  readonly db = new SqliteDb(join(this.dir, 'ferry.db'));
  readonly sessions = new SessionRegistry();
  readonly prefetch = new FakePrefetch();
  ctx!: ControllerContext;
  scheduler!: RolloutScheduler;

  constructor(readonly agentIds: string[]) {
    this.db.migrate();
    this.build();
  }

  private build(): void {
    const plan = parsePlan(PLAN, 'p.yaml').plan!;
    const signed = { plan: PLAN, signature: '', keyId: 'k', file: 'p.yaml' };
    this.ctx = {
      db: this.db, log: silentLogger(), sessions: this.sessions, audit: new AuditLog(this.db),
      jobs: new JobCoordinator(this.db, this.sessions, silentLogger()),
      prefetch: this.prefetch as unknown as ControllerContext['prefetch'],
      bundles: { lease: () => () => undefined, byId: async () => BUNDLE, require: async () => BUNDLE } as unknown as ControllerContext['bundles'],
      plans: { require: async () => ({ id: 'plan-1', signed, plan, createdAt: 0 }) } as unknown as ControllerContext['plans'],
      agents: { list: async () => this.agentIds.map(agent) } as unknown as ControllerContext['agents'],
    } as unknown as ControllerContext;
    this.scheduler = new RolloutScheduler(this.ctx);
    this.ctx.rollouts = this.scheduler;
  }

  async start(): Promise<void> {
    await this.db.run('INSERT INTO plans (id, name, signed_plan, key_id, created_at) SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM plans WHERE id = ?)',
      ['plan-1', 'p', JSON.stringify({ plan: PLAN, signature: '', keyId: 'k', file: 'p.yaml' }), 'k', 0, 'plan-1']);
    await this.scheduler.start();
  }

  connect(id: string): FakeSession {
    const s = new FakeSession(id);
    this.sessions.attach(s);
    return s;
  }

  /** The agent reports a result for a host job (sequence numbers from 1). */
  async result(agentId: string, hostJobId: string, status: string, seq = 1): Promise<void> {
    const r: JobResult = { jobId: hostJobId, seq, status, failedStep: status === 'failed' ? 'one' : '', message: status, durationMs: 1, changed: 0, unchanged: 1, skipped: 0, exit: undefined };
    await this.ctx.jobs.onMessage(agentId, hostJobId, seq, { result: r });
  }

  /** Lets queued scheduler work run to quiescence. */
  async flush(): Promise<void> {
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setImmediate(r));
      await this.scheduler.serial(async () => undefined);
    }
  }

  /** Stops the scheduler and builds a new one (and a new job coordinator) on the same store. */
  async restart(): Promise<void> {
    await this.scheduler.stop();
    for (const s of this.sessions.all()) this.sessions.detach(s);
    this.build();
  }

  async close(): Promise<void> {
    await this.scheduler.stop();
    await this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
