import { AgentUpgradeStore } from '../../../controller/src/store/agent-upgrades.js';
import { rmSync } from 'node:fs';
import { BundleState, type ControllerMessage, type JobResult } from '../../../common/src/gen/ferry/v1/session.js';
import type { PrefetchEvent } from '../../../common/src/gen/ferry/v1/admin.js';
import { silentLogger } from '../../../common/src/log.js';
import { parsePlan } from '../../../common/src/plan/parse.js';
import type { StoredBundle } from '../../../controller/src/bundles/bundle-store.js';
import { JobCoordinator } from '../../../controller/src/jobs/job-coordinator.js';
import { ManualClock } from '../../../controller/src/rollouts/clock.js';
import { RolloutStore } from '../../../controller/src/rollouts/rollout-store.js';
import { RolloutScheduler, type SchedulerDeps } from '../../../controller/src/rollouts/scheduler.js';
import { SessionRegistry, type LiveSession } from '../../../controller/src/sessions/registry.js';
import type { AgentRecord } from '../../../controller/src/store/agents.js';
import { AuditLog } from '../../../controller/src/store/audit.js';
import type { Db } from '../../../controller/src/store/db.js';
import { migrateStore } from '../../../controller/src/store/migrate.js';
import { tempDir } from '../../support/fixtures.js';
import { sqliteStore, type TestStore } from '../../support/stores.js';

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

/**
 * A prefetch whose outcome per host the test decides. Like the real
 * coordinator, a run waits until each of its hosts reports ready or failed
 * (or the signal aborts), and knows nothing about disconnects.
 */
export class FakePrefetch {
  calls: Array<{ targets: string[]; sink: (ev: PrefetchEvent) => void; signal: AbortSignal; done: () => void }> = [];
  /** Called when a run starts (a test can await the phase reaching a host). */
  onRun: () => void = () => undefined;
  run(_b: StoredBundle, targets: Array<{ agentId: string }>, sink: (ev: PrefetchEvent) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      this.calls.push({ targets: targets.map((t) => t.agentId), sink, signal, done: resolve });
      signal.addEventListener('abort', () => resolve(), { once: true });
      this.onRun();
    });
  }
  /** Every host any run was asked to stage, in order. */
  targets(): string[] {
    return this.calls.flatMap((c) => c.targets);
  }
  /** Reports one host's outcome to its latest run, which then ends (one host per run). */
  report(agentId: string, state: 'ready' | 'failed' | 'offline', error = ''): void {
    const ev: PrefetchEvent = {
      agentId, hostname: agentId, state: state === 'ready' ? BundleState.BUNDLE_STATE_READY : BundleState.BUNDLE_STATE_FAILED,
      bytesDone: 0, bytesTotal: 0, bytesFetched: 0, error, offline: state === 'offline', final: false,
    };
    const call = this.calls.findLast((c) => c.targets.includes(agentId));
    if (!call) throw new Error(`no prefetch run for ${agentId}`);
    call.sink(ev);
    call.done();
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
  return { id, hostname: id, labels: { role: 'edge' }, facts: {} as AgentRecord['facts'], protocolVersion: 1, previousVersion: '', agentVersion: '1', tokenId: null, enrolledAt: 0, lastSeenAt: null, revokedAt: null, certSerial: '', certNotAfter: 0, keyFingerprint: null, reauthAllowedAt: null };
}

/**
 * A controller's rollout machinery on a real store (SQLite in a temp dir)
 * and the real job coordinator, with fake agents, prefetch, plans and
 * bundles, so scheduler behaviour is tested without gRPC. Time is a
 * ManualClock: tests advance it instead of sleeping. `restart()` builds a
 * new coordinator and scheduler on the same store, as a controller
 * restart does.
 */
export class FakeController {
  readonly dir: string = '';
  readonly sessions = new SessionRegistry();
  readonly prefetch = new FakePrefetch();
  readonly clock = new ManualClock();
  deps!: SchedulerDeps;
  scheduler!: RolloutScheduler;

  private constructor(readonly agentIds: string[], readonly db: Db) {
    this.build();
  }

  /** A fake controller on a fresh, migrated store of the given kind (SQLite by default). */
  static async create(agentIds: string[], store: TestStore = sqliteStore): Promise<FakeController> {
    const dir = tempDir('ferry-sched-');
    const db = await store.open(dir);
    await migrateStore(db);
    const f = new FakeController(agentIds, db);
    (f as { dir: string }).dir = dir;
    return f;
  }

  private build(): void {
    const plan = parsePlan(PLAN, 'p.yaml').plan!;
    const signed = { plan: PLAN, signature: '', keyId: 'k', file: 'p.yaml' };
    const stored = { id: 'plan-1', signed, plan, createdAt: 0 };
    this.deps = {
      store: new RolloutStore(this.db, this.clock), log: silentLogger(), sessions: this.sessions, audit: new AuditLog(this.db),
      jobs: new JobCoordinator(this.db, this.sessions, silentLogger()),
      prefetch: this.prefetch,
      bundles: { lease: () => () => undefined, byId: async () => BUNDLE, list: async () => [BUNDLE] },
      plans: {
        require: async () => stored, byId: async (id) => (id === stored.id ? stored : undefined),
        jobBundles: async (p) => p.plan.bundles.map((b) => ({ as: b.as, bundleId: BUNDLE.id, signed: BUNDLE.signed })),
      },
      agents: { list: async () => this.agentIds.map(agent), get: async (id) => agent(id) },
      agentUpgrades: new AgentUpgradeStore(this.db),
      clock: this.clock,
    };
    this.scheduler = new RolloutScheduler(this.deps);
  }

  async start(): Promise<void> {
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
    await this.deps.jobs.onMessage(agentId, hostJobId, seq, { result: r });
  }

  /** Moves the clock forward (firing the scheduler's timers), then lets the work that caused run. */
  async advance(ms: number): Promise<void> {
    this.clock.advance(ms);
    await this.flush();
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
