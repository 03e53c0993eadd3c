import 'reflect-metadata';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { Exit } from '../../common/src/exit-codes.js';
import { formatJoinString } from '../../common/src/join-string.js';
import { silentLogger } from '../../common/src/log.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { copySqliteToPostgres, postgresTables } from '../../controller/src/store/copy-store.js';
import { SqliteDb, type Db, type RunResult, type SqlValue } from '../../controller/src/store/db.js';
import { PgDb } from '../../controller/src/store/pg-db.js';
import { memBundle } from '../support/bundles.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { assertConforms, documentedKinds } from '../support/json-docs.js';
import { jsonLines } from '../support/json-lines.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';
import { repoRoot, run } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
const ferry = (...args: string[]) => run([process.execPath, ferryBin, ...args], { timeoutMs: 60_000 });

/** A store whose INSERTs into one table change a value on the way: what a lossy copy would do, for the content check to catch. */
class TamperingDb implements Db {
  readonly dialect: Db['dialect'];
  constructor(private readonly inner: Db, private readonly table: string) { this.dialect = inner.dialect; }
  run(sql: string, params?: SqlValue[]): Promise<RunResult> {
    const p = sql.startsWith(`INSERT INTO ${this.table} `) && params ? [...params.slice(0, -1), `${String(params[params.length - 1])} (altered)`] : params;
    return this.inner.run(sql, p);
  }
  get<T>(sql: string, params?: SqlValue[]): Promise<T | undefined> { return this.inner.get<T>(sql, params); }
  all<T>(sql: string, params?: SqlValue[]): Promise<T[]> { return this.inner.all<T>(sql, params); }
  exec(sql: string): Promise<void> { return this.inner.exec(sql); }
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T> { return this.inner.tx((t) => fn(new TamperingDb(t, this.table))); }
  close(): Promise<void> { return this.inner.close(); }
}

describe('operating replicas: controller status, migrate-store', function () {
  this.timeout(90_000);
  const docs = documentedKinds();
  const cs: Controller[] = [];
  const agents: TestAgent[] = [];
  const dirs: string[] = [];

  before(function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
  });
  after(async () => {
    await cleanup(undefined, agents);
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** An agent whose session is on `c` (its join string names only that replica). */
  async function agentOn(c: Controller, hostname: string): Promise<TestAgent> {
    const { token } = await c.ctx.tokens.create({ ttlMs: 600_000, maxUses: 1, labels: {} });
    const a = await enrollAgent(c, hostname, { js: formatJoinString({ addresses: [c.address], token, caPin: c.pin }) });
    agents.push(a);
    return a;
  }

  async function status(c: Controller): Promise<Record<string, unknown>> {
    const r = await ferry('controller', 'status', '--admin-socket', c.config.adminSocket, '--json');
    assert.equal(r.code, 0, r.stderr);
    const recs = jsonLines(r.stdout);
    assert.equal(recs.length, 1);
    assertConforms(docs, 'controller-status', recs);
    assertConforms(docs, 'controller-replica', recs[0]!['replicas'] as object[]);
    return recs[0]!;
  }

  /** One /metrics scrape of `c`: every sample must name `c`'s replica; returned by `name{labels}` with that label left out. */
  async function metricsOf(c: Controller): Promise<Map<string, number>> {
    const res = await fetch(`http://127.0.0.1:${c.httpPort}/metrics`);
    assert.equal(res.status, 200);
    const out = new Map<string, number>();
    const label = `replica="${c.replicaId}"`;
    for (const line of (await res.text()).split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const i = line.lastIndexOf(' ');
      const series = line.slice(0, i);
      assert.ok(series.includes(label), `a series without ${label}: ${series}`);
      out.set(series.replace(`,${label}`, '').replace(`${label},`, '').replace(`{${label}}`, ''), Number(line.slice(i + 1)));
    }
    return out;
  }

  it('controller status: every replica names the same scheduler and epoch, and each replica\'s sessions; after the scheduler stops, the next one with a higher epoch', async () => {
    const store = await (await sharedPostgres()).createDatabase('s3cret-pass');
    for (let i = 0; i < 3; i++) cs.push(await startController({ store, 'lease-ttl': '1s' }, tempDir(`ferry-replica${i}-`)));
    const [a, b, c] = cs as [Controller, Controller, Controller];
    await waitFor(() => cs.every((x) => x.ctx.joinAddresses().length === 3), 10_000, 'replicas see each other');
    await agentOn(a, 'h-a1');
    await agentOn(a, 'h-a2');
    await agentOn(b, 'h-b1');
    const want = new Map([[a.replicaId, 2], [b.replicaId, 1], [c.replicaId, 0]]);
    let seen: Record<string, unknown> = {};
    await waitFor(async () => {
      seen = await status(c);
      const reps = seen['replicas'] as Array<Record<string, unknown>>;
      return reps.length === 3 && reps.every((r) => want.get(r['id'] as string) === r['sessions']);
    }, 15_000, 'sessions per replica in status');
    assert.equal(seen['leader'], a.replicaId, 'the first replica holds the lease');
    assert.equal(seen['replicaId'], c.replicaId);
    assert.ok((seen['epoch'] as number) >= 1 && (seen['leaseExpiresInMs'] as number) > 0);
    assert.doesNotMatch(String(seen['store']), /s3cret-pass/);
    assert.equal(seen['chunkDir'], a.config.chunkDir);
    const reps = seen['replicas'] as Array<Record<string, unknown>>;
    assert.deepEqual(reps.map((r) => [r['id'], r['leader'], r['self']]).sort(), [[a.replicaId, true, false], [b.replicaId, false, false], [c.replicaId, false, true]].sort());
    for (const x of [a, b]) {
      const s = await status(x);
      assert.deepEqual([s['leader'], s['epoch']], [seen['leader'], seen['epoch']], `replica ${x.replicaId} agrees`);
    }
    const human = await ferry('controller', 'status', '--admin-socket', b.config.adminSocket);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, new RegExp(`scheduler: +${a.replicaId} on .*, epoch ${String(seen['epoch'])}, lease renewed`));
    assert.match(human.stdout, new RegExp(`${b.replicaId}\\* .* 1 `));
    // /metrics names the replica on every series: its own sessions, whether it is the scheduler, and the fleet's online agents from the store.
    const [ma, mb, mc] = await Promise.all([a, b, c].map(metricsOf));
    assert.deepEqual([ma, mb, mc].map((m) => m.get('ferry_sessions')), [2, 1, 0]);
    assert.deepEqual([ma, mb, mc].map((m) => m.get('ferry_scheduler_leader')), [1, 0, 0]);
    assert.deepEqual([ma, mb, mc].map((m) => m.get('ferry_agents{state="online"}')), [3, 3, 3]);

    await a.stop(1_000);
    await waitFor(async () => {
      seen = await status(b);
      return seen['leader'] !== null && seen['leader'] !== a.replicaId;
    }, 10_000, 'a new scheduler in status');
    assert.ok((seen['epoch'] as number) > 1, `epoch ${String(seen['epoch'])}`);
    assert.ok([b.replicaId, c.replicaId].includes(seen['leader'] as string));
    assert.equal((seen['replicas'] as unknown[]).length, 2);
  });

  it('migrate-store: refuses a running controller; copies a stopped one into an empty database, verified; the controller runs on it with its agents, bundles and history', async () => {
    const data = tempDir('ferry-sqlite-ctl-');
    const c = await startController({}, data);
    const key = generateSigningKey();
    const admin = Admin.connect({ adminSocket: c.config.adminSocket });
    const b = memBundle('edge', '1.0.0', { 'bin/tool': Buffer.from('#!/bin/sh\necho hi\n') }, key.privatePem);
    try {
      await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
      await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
      await admin.call(admin.client.pushPlan, { signed: signPlan('name: hi\nsteps:\n  - id: s\n    type: exec\n    args: { argv: ["true"] }\n', 'hi.yaml', key.privatePem) });
      await admin.call(admin.client.createToken, { ttlMs: 600_000, maxUses: 5, labels: [{ key: 'site', value: 'p7' }] });
    } finally {
      admin.close();
    }
    const agent = await enrollAgent(c, 'mig-1');
    agents.push(agent);
    await waitFor(() => c.ctx.sessions.get(agent.id) !== undefined, 10_000, 'the agent connected');
    const port = c.address.split(':')[1]!;
    const server = await sharedPostgres();
    const url = await server.createDatabase('pw-not-shown');

    const busy = await ferry('controller', 'migrate-store', '--data', data, '--to', url, '--json');
    assert.equal(busy.code, Exit.Usage, busy.stdout + busy.stderr);
    assert.match(busy.stdout, /is in use by a ferry controller .*stop the controller first/);
    await c.stop(1_000);

    // A non-empty target is refused and left as it was.
    const full = await server.createDatabase();
    const fullDb = new PgDb({ url: full, log: silentLogger() });
    try {
      await fullDb.run('CREATE TABLE someone_elses (x INTEGER)');
      const r = await ferry('controller', 'migrate-store', '--data', data, '--to', full);
      assert.equal(r.code, Exit.Failure, r.stdout + r.stderr);
      assert.match(r.stderr, /the target database is not empty \(1 tables, e\.g\. someone_elses\)/);
      assert.deepEqual(await postgresTables(fullDb), ['someone_elses']);
    } finally {
      await fullDb.close();
    }

    // A copy that does not match (a value altered on the way) fails its check and leaves the target empty.
    const bad = await server.createDatabase();
    const badDb = new PgDb({ url: bad, log: silentLogger() });
    const src = new SqliteDb(join(data, 'ferry.db'));
    try {
      await assert.rejects(copySqliteToPostgres(src, new TamperingDb(badDb, 'audit')), /table audit: \d+ rows in SQLite, \d+ in PostgreSQL with different contents; nothing was kept/);
      assert.deepEqual(await postgresTables(badDb), []);
    } finally {
      await badDb.close();
    }
    const counts = new Map<string, number>();
    for (const t of ['agents', 'audit', 'bundles', 'plans', 'tokens', 'signing_keys', 'leases']) {
      counts.set(t, (await src.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${t}`))!.n);
    }
    await src.close();

    const r = await ferry('controller', 'migrate-store', '--data', data, '--to', url, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const recs = jsonLines(r.stdout);
    assertConforms(docs, 'controller-migrate-store', recs);
    const rec = recs[0]!;
    assert.doesNotMatch(r.stdout, /pw-not-shown/);
    assert.equal(rec['verified'], true);
    for (const [t, n] of counts) assert.equal((rec['counts'] as Record<string, number>)[t], n, t);
    assert.ok((counts.get('audit') ?? 0) > 0 && counts.get('agents') === 1);
    const again = await ferry('controller', 'migrate-store', '--data', data, '--to', url);
    assert.equal(again.code, Exit.Failure);
    assert.match(again.stderr, /not empty/);

    // The first replica on the migrated store: same data directory and address; its agent reconnects, its bundle is served.
    const replica = await startController({ store: url, chunks: join(data, 'chunks'), listen: `127.0.0.1:${port}` }, data);
    cs.push(replica);
    await waitFor(() => replica.ctx.sessions.get(agent.id) !== undefined, 15_000, 'the agent back on the migrated controller');
    const stored = await replica.ctx.bundles.require('edge', '1.0.0');
    let last: { state: number; error: string } | undefined;
    await replica.ctx.prefetch.run(stored, [{ agentId: agent.id, hostname: 'mig-1' }], (ev) => { last = ev; }, AbortSignal.timeout(20_000));
    assert.equal(last?.error, '');
    assert.ok(await replica.ctx.plans.latest('hi'), 'the plan');
    assert.equal(replica.ctx.db.dialect, 'postgres');
    // The first replica, restarted on its own data directory, finds its CA in the store (same certificate, however its file ends).
    await replica.stop(1_000);
    cs.push(await startController({ store: url, chunks: join(data, 'chunks') }, data));
  });
});
