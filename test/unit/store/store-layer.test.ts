import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { silentLogger } from '../../../common/src/log.js';
import { DuplicateKeyError, type Db } from '../../../controller/src/store/db.js';
import { migrateStore, storeVersion } from '../../../controller/src/store/migrate.js';
import { MIGRATIONS } from '../../../controller/src/store/migrations.js';
import { PgDb } from '../../../controller/src/store/pg-db.js';
import { tempDir } from '../../support/fixtures.js';
import { describeStores } from '../../support/stores.js';

const LATEST = MIGRATIONS[MIGRATIONS.length - 1]!.version;

describeStores('store layer', function (store) {
  let dir: string;
  const open: Db[] = [];
  async function fresh(): Promise<Db> {
    const db = await store.open(dir);
    open.push(db);
    return db;
  }
  beforeEach(() => { dir = tempDir('ferry-store-'); });
  afterEach(async () => {
    for (const db of open.splice(0)) await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('migrates a new store to the newest version once; a second start applies nothing', async () => {
    const db = await fresh();
    assert.equal(await migrateStore(db), MIGRATIONS.length);
    assert.equal(await storeVersion(db), LATEST);
    assert.equal(await migrateStore(db), 0);
  });

  it('refuses a store newer than this controller and changes nothing in it', async () => {
    const db = await fresh();
    await migrateStore(db);
    await db.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [LATEST + 1, 'from the future', 1]);
    await assert.rejects(migrateStore(db), (e: FerryError) => e.code === ErrorCode.Config
      && e.message.includes(`schema version ${LATEST + 1}, newer than this controller knows (${LATEST})`) && /newer controller version/.test(e.hint ?? ''));
    assert.equal(await storeVersion(db), LATEST + 1);
  });

  it('replicas starting together apply each migration exactly once', async function () {
    if (store.kind === 'sqlite') this.skip(); // one SQLite file has one controller (the data directory lock)
    const url = await store.flags().then((f) => String(f.store));
    const dbs = [0, 1, 2].map(() => new PgDb({ url, log: silentLogger() }));
    open.push(...dbs);
    const applied = await Promise.all(dbs.map((d) => migrateStore(d)));
    assert.equal(applied.reduce((a, b) => a + b, 0), MIGRATIONS.length);
    assert.equal(await storeVersion(dbs[0]!), LATEST);
  });

  it('reads BIGINT and COUNT as numbers, keeps text as text, binds ? in order', async () => {
    const db = await fresh();
    await migrateStore(db);
    const big = 1_900_000_000_123;
    await db.run("INSERT INTO audit (id, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, '?')", ['x1', big, 'me', 'a?', 's']);
    const row = await db.get<{ at: number; action: string; detail: string; n: number }>(
      'SELECT at, action, detail, (SELECT COUNT(*) FROM audit) AS n FROM audit WHERE id = ?', ['x1']);
    assert.deepEqual(row, { at: big, action: 'a?', detail: '?', n: 1 });
  });

  it('a primary-key or unique clash is one error type on either dialect, in and out of a transaction; other failures are not it', async () => {
    const db = await fresh();
    await db.exec('CREATE TABLE dup_t (id TEXT PRIMARY KEY, name TEXT UNIQUE, n INTEGER NOT NULL)');
    await db.run('INSERT INTO dup_t (id, name, n) VALUES (?, ?, ?)', ['a', 'x', 1]);
    await assert.rejects(db.run('INSERT INTO dup_t (id, name, n) VALUES (?, ?, ?)', ['a', 'y', 2]), (e) => e instanceof DuplicateKeyError && /dup_t|UNIQUE|duplicate/i.test(e.message));
    await assert.rejects(db.run('INSERT INTO dup_t (id, name, n) VALUES (?, ?, ?)', ['b', 'x', 2]), (e) => e instanceof DuplicateKeyError);
    await assert.rejects(db.tx(async (t) => { await t.run('INSERT INTO dup_t (id, name, n) VALUES (?, ?, ?)', ['c', 'z', 3]); await t.run('INSERT INTO dup_t (id, name, n) VALUES (?, ?, ?)', ['a', 'w', 4]); }),
      (e) => e instanceof DuplicateKeyError);
    assert.equal((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM dup_t'))!.n, 1, 'the failed transaction left nothing');
    await assert.rejects(db.run('INSERT INTO dup_t (id, name) VALUES (?, ?)', ['d', 'v']), (e) => e instanceof Error && !(e instanceof DuplicateKeyError), 'a NOT NULL failure is not a duplicate');
  });

  it('a transaction is all or nothing; statements in it see its own writes', async () => {
    const db = await fresh();
    await migrateStore(db);
    await assert.rejects(db.tx(async (t) => {
      await t.run("INSERT INTO audit (id, at, actor, action, subject, detail) VALUES ('y1', 1, 'me', 'x', 's', '')");
      assert.equal((await t.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit'))!.n, 1);
      throw new Error('boom');
    }), /boom/);
    assert.equal((await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM audit'))!.n, 0);
    const n = await db.tx(async (t) => (await t.run("INSERT INTO audit (id, at, actor, action, subject, detail) VALUES ('y2', 1, 'me', 'x', 's', '')")).changes);
    assert.equal(n, 1);
  });
});

describe('PostgreSQL store unreachable', () => {
  it('fails UNAVAILABLE with a hint and the URL without its password', async () => {
    const db = new PgDb({ url: 'postgres://ferry:hunter2@127.0.0.1:1/ferry', log: silentLogger() });
    try {
      await assert.rejects(migrateStore(db), (e: FerryError) => {
        assert.equal(e.code, ErrorCode.Unavailable);
        assert.match(e.message, /PostgreSQL at postgres:\/\/ferry:\*\*\*@127\.0\.0\.1:1\/ferry\) is unreachable/);
        assert.doesNotMatch(`${e.message} ${e.hint}`, /hunter2/);
        return true;
      });
    } finally {
      await db.close();
    }
  });
});
