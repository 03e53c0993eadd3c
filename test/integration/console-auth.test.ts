import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { ConsoleAuth } from '../../controller/src/store/console-auth.js';
import { migrateStore } from '../../controller/src/store/migrate.js';
import { SqliteDb } from '../../controller/src/store/db.js';
import { tempDir } from '../support/fixtures.js';

/** Login links and sessions on a real store, with time given by the test. */
describe('console login links and sessions (store)', () => {
  const dir = tempDir('ferry-console-auth-');
  let db: SqliteDb;
  let auth: ConsoleAuth;
  const T = 1_800_000_000_000;
  const refused = (why: RegExp) => (e: FerryError) => e.code === ErrorCode.Unauthenticated && why.test(e.message) && /ferry operator login/.test(e.hint ?? '');

  before(async () => {
    db = new SqliteDb(join(dir, 'ferry.db'));
    await migrateStore(db);
    auth = new ConsoleAuth(db);
  });
  after(async () => { await db.close(); rmSync(dir, { recursive: true, force: true }); });

  it('opens a session once per link, with the role it names, and keeps only hashes', async () => {
    const { token, expiresAt } = await auth.createLogin('alice', 'admin', 'local', 600_000, T);
    assert.equal(expiresAt, T + 600_000);
    const { sessionId, session } = await auth.consumeLogin(token, 3_600_000, T + 1_000);
    assert.deepEqual([session.operator, session.role, session.expiresAt], ['alice', 'admin', T + 1_000 + 3_600_000]);
    assert.equal((await auth.session(sessionId, T + 2_000))?.csrf, session.csrf);
    await assert.rejects(auth.consumeLogin(token, 3_600_000, T + 2_000), refused(/was used already/));
    const stored = JSON.stringify([await db.all('SELECT * FROM console_logins'), await db.all('SELECT * FROM console_sessions')]);
    assert.ok(!stored.includes(token) && !stored.includes(sessionId), 'neither secret is in the store');
  });

  it('refuses an expired link and ends a session at its expiry', async () => {
    const { token } = await auth.createLogin('bob', 'viewer', 'local', 60_000, T);
    await assert.rejects(auth.consumeLogin(token, 3_600_000, T + 60_000), refused(/has expired/));
    const fresh = await auth.createLogin('bob', 'viewer', 'local', 60_000, T);
    const { sessionId } = await auth.consumeLogin(fresh.token, 3_600_000, T);
    assert.ok(await auth.session(sessionId, T + 3_599_999));
    assert.equal(await auth.session(sessionId, T + 3_600_000), undefined);
    await assert.rejects(auth.consumeLogin('x'.repeat(43), 3_600_000, T), refused(/is not one this controller issued/));
  });

  it('lets only one of two concurrent openings of a link win', async () => {
    const { token } = await auth.createLogin('carol', 'admin', 'local', 60_000, T);
    const results = await Promise.allSettled([auth.consumeLogin(token, 60_000, T + 1), auth.consumeLogin(token, 60_000, T + 1)]);
    assert.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  });

  it('ends every session of an operator (revocation) and one at logout', async () => {
    const open = async (name: string) => (await auth.consumeLogin((await auth.createLogin(name, 'viewer', 'local', 60_000, T)).token, 3_600_000, T)).sessionId;
    const [d1, d2, e1] = [await open('dave'), await open('dave'), await open('erin')];
    assert.equal(await auth.endSessionsOf('dave'), 2);
    assert.equal(await auth.session(d1, T + 1), undefined);
    assert.equal(await auth.session(d2, T + 1), undefined);
    assert.ok(await auth.session(e1, T + 1));
    await auth.endSession(e1);
    assert.equal(await auth.session(e1, T + 1), undefined);
  });
});
