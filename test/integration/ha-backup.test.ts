import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { Exit } from '../../common/src/exit-codes.js';
import { BundleState } from '../../common/src/gen/ferry/v1/session.js';
import { formatJoinString } from '../../common/src/join-string.js';
import { silentLogger } from '../../common/src/log.js';
import { pgTool } from '../../controller/src/backup/pg-store-backup.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { postgresTables } from '../../controller/src/store/copy-store.js';
import { MIGRATIONS } from '../../controller/src/store/migrations.js';
import { PgDb } from '../../controller/src/store/pg-db.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { assertConforms, documentedKinds } from '../support/json-docs.js';
import { jsonLines } from '../support/json-lines.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';
import { repoRoot, run } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
const PASS = { FERRY_BACKUP_PASSPHRASE: 'a passphrase for the pg test' };
const ferry = (args: string[]) => run([process.execPath, ferryBin, ...args], { env: PASS, timeoutMs: 60_000 });
/** Tables whose rows only the backup's content decides (heartbeats and leases move on while replicas run). */
const CONTENT = ['agents', 'audit', 'bundles', 'plans', 'signing_keys', 'tokens', 'shared_ca', 'store_settings', 'schema_migrations'];

describe('backup and restore of a PostgreSQL store (pg_dump, pg_restore)', function () {
  this.timeout(90_000);
  const cs: Controller[] = [];
  const agents: TestAgent[] = [];
  const dirs: string[] = [];
  const dbs: PgDb[] = [];
  const docs = documentedKinds();
  const open = (url: string) => { const d = new PgDb({ url, log: silentLogger(), poolSize: 2 }); dbs.push(d); return d; };

  before(function () {
    const missing = postgresMissing() ?? (existsSync(pgTool('pg_dump')) ? undefined : `no pg_dump (${pgTool('pg_dump')}): install postgresql-client-15`);
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
  });
  after(async () => {
    await cleanup(undefined, agents);
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
    for (const d of dbs) await d.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a backup taken while two replicas run restores into an empty database, and a controller on it gets its agent back and serves its bundle', async () => {
    const server = await sharedPostgres();
    const url = await server.createDatabase('db-password-never-shown');
    const a = await startController({ store: url, 'lease-ttl': '1s' }, tempDir('ferry-pg-a-'));
    cs.push(a);
    cs.push(await startController({ store: url, 'lease-ttl': '1s' }, tempDir('ferry-pg-b-')));
    const key = generateSigningKey();
    const files = { 'bin/edgecore': randomFile(2), 'etc/x.conf': Buffer.from('x = 1\n') };
    const b = memBundle('edge', '2.0.0', files, key.privatePem);
    const admin = Admin.connect({ adminSocket: a.config.adminSocket });
    try {
      await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
      await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    } finally {
      admin.close();
    }
    const { token } = await a.ctx.tokens.create({ ttlMs: 600_000, maxUses: 1, labels: {} });
    const agent = await enrollAgent(a, 'pg-host', { js: formatJoinString({ addresses: [a.address], token, caPin: a.pin }) });
    agents.push(agent);
    await waitFor(() => a.ctx.sessions.get(agent.id) !== undefined, 10_000, 'the agent connected');

    const dir = tempDir('ferry-pg-backup-');
    dirs.push(dir);
    const file = join(dir, 'ferry.fbak');
    const bk = await ferry(['controller', 'backup', '--data', a.config.dataDir, '--store', url, '--chunks', a.config.chunkDir, '--out', file, '--json']);
    assert.equal(bk.code, 0, bk.stdout + bk.stderr);
    assertConforms(docs, 'controller-backup', jsonLines(bk.stdout));
    const rec = jsonLines(bk.stdout)[0]!;
    assert.deepEqual([rec['store'], rec['chunks'], rec['schemaVersion']], ['postgres', true, MIGRATIONS[MIGRATIONS.length - 1]!.version]);
    assert.doesNotMatch(bk.stdout + bk.stderr, /db-password-never-shown/);

    // Refusals, each leaving the target as it was: no database named; a SQLite target; a database that is not empty.
    const target = join(dir, 'data');
    const noStore = await ferry(['controller', 'restore', file, '--data', target]);
    assert.equal(noStore.code, Exit.Usage, noStore.stderr);
    assert.match(noStore.stderr, /holds a PostgreSQL store; restore needs the empty database[\s\S]*--store postgres:/);
    const busy = await ferry(['controller', 'restore', file, '--data', target, '--store', url]);
    assert.equal(busy.code, Exit.Failure, busy.stderr);
    assert.match(busy.stderr, /the database to restore into \(postgres:\/\/postgres:\*\*\*@.*\) is not empty/);
    assert.ok(!existsSync(target) , 'the data directory was not created');

    const url2 = await server.createDatabase();
    const rs = await ferry(['controller', 'restore', file, '--data', target, '--store', url2, '--json']);
    assert.equal(rs.code, 0, rs.stdout + rs.stderr);
    assertConforms(docs, 'controller-restore', jsonLines(rs.stdout));
    assert.equal(jsonLines(rs.stdout)[0]!['store'], 'postgres');
    const [src, dst] = [open(url), open(url2)];
    assert.deepEqual(await postgresTables(dst), await postgresTables(src));
    for (const t of CONTENT) {
      const q = `SELECT COUNT(*) AS n FROM ${t}`;
      assert.equal((await dst.get<{ n: number }>(q))!.n, (await src.get<{ n: number }>(q))!.n, t);
    }
    assert.deepEqual(await dst.all('SELECT id, signed_manifest FROM bundles'), await src.all('SELECT id, signed_manifest FROM bundles'));

    // The old replicas go; a controller on the restored data directory and database takes the old address.
    const port = a.address.split(':')[1]!;
    for (const c of cs.splice(0)) { await c.stop(1_000); rmSync(c.config.dataDir, { recursive: true, force: true }); }
    const restored = await startController({ store: url2, chunks: join(target, 'chunks'), listen: `127.0.0.1:${port}` }, target);
    cs.push(restored);
    await waitFor(() => restored.ctx.sessions.get(agent.id) !== undefined, 15_000, 'the agent back on the restored controller');
    const stored = await restored.ctx.bundles.require('edge', '2.0.0');
    let last: { state: number; error: string } | undefined;
    await restored.ctx.prefetch.run(stored, [{ agentId: agent.id, hostname: 'pg-host' }], (ev) => { last = ev; }, AbortSignal.timeout(20_000));
    assert.equal(last?.state, BundleState.BUNDLE_STATE_READY, last?.error);
  });

  it('an unreachable PostgreSQL store fails the backup clearly, without its password, and writes no file', async () => {
    const c = await startController();
    cs.push(c);
    const dir = tempDir('ferry-pg-backup-');
    dirs.push(dir);
    const r = await ferry(['controller', 'backup', '--data', c.config.dataDir, '--store', 'postgres://ferry:topsecret@127.0.0.1:1/ferry', '--out', join(dir, 'x.fbak')]);
    assert.equal(r.code, Exit.Unreachable, r.stderr);
    assert.match(r.stderr, /the store \(PostgreSQL at postgres:\/\/ferry:\*\*\*@127\.0\.0\.1:1\/ferry\) is unreachable/);
    assert.doesNotMatch(r.stdout + r.stderr, /topsecret/);
    assert.ok(!existsSync(join(dir, 'x.fbak')));
  });
});
