import assert from 'node:assert/strict';
import { silentLogger } from '../../common/src/log.js';
import { FencedDb, type Fence } from '../../controller/src/ha/fenced-db.js';
import { Lease } from '../../controller/src/ha/lease.js';
import { ManualClock } from '../../controller/src/rollouts/clock.js';
import type { Db } from '../../controller/src/store/db.js';
import { migrateStore } from '../../controller/src/store/migrate.js';
import { PgDb } from '../../controller/src/store/pg-db.js';
import { waitFor } from '../support/fixtures.js';
import { LinkProxy } from '../support/link-proxy.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';

const TTL = 10_000;

describe('a partitioned old scheduler on real PostgreSQL', function () {
  this.timeout(60_000);
  let proxy: LinkProxy;
  let a: PgDb;
  let b: PgDb;
  let clock: ManualClock;
  const fences: Record<string, Fence | undefined> = {};
  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
  });
  beforeEach(async () => {
    const server = await sharedPostgres();
    const url = await server.createDatabase();
    proxy = await LinkProxy.start(`127.0.0.1:${server.port}`);
    // Replica a reaches the database through a link the test can stall; b directly.
    a = new PgDb({ url: url.replace(`:${server.port}/`, `:${proxy.address.split(':')[1]}/`), log: silentLogger(), poolSize: 2 });
    b = new PgDb({ url, log: silentLogger() });
    await migrateStore(b);
    clock = new ManualClock();
  });
  afterEach(async () => {
    proxy.restore();
    await Promise.all([a.close(), b.close(), proxy.close()]);
  });
  const lease = (d: Db, owner: string) => new Lease({ db: d, name: 'scheduler', owner, ttlMs: TTL, now: () => clock.now() });
  const write = (d: Db, id: string) => d.run("INSERT INTO audit (id, at, actor, action, subject, detail) VALUES (?, 1, 'x', 'x', 'x', '')", [id]);
  const audit = async () => (await b.all<{ id: string }>('SELECT id FROM audit ORDER BY id')).map((r) => r.id);

  it('a write sent into a stalled connection lands after the takeover and is refused', async () => {
    const fa = new FencedDb(a, () => fences['a']);
    fences['a'] = { name: 'scheduler', owner: 'a', epoch: (await lease(a, 'a').acquire())! };
    await write(fa, 'a1');
    proxy.stall();
    const late = write(fa, 'a2'); // a believes it still holds the lease
    clock.advance(TTL);
    const e2 = await lease(b, 'b').acquire();
    assert.equal(e2, fences['a'].epoch + 1, 'b takes over: a holds no lock the takeover would wait for');
    proxy.restore();
    await assert.rejects(late, /lost the scheduler lease \(it held epoch/);
    fences['b'] = { name: 'scheduler', owner: 'b', epoch: e2! };
    await write(new FencedDb(b, () => fences['b']), 'b1');
    assert.deepEqual(await audit(), ['a1', 'b1']);
  });

  it('a write that passed the fence before the takeover commits first: the takeover waits for it, so no write of the old holder follows the new one', async () => {
    const fa = new FencedDb(a, () => fences['a']);
    fences['a'] = { name: 'scheduler', owner: 'a', epoch: (await lease(a, 'a').acquire())! };
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let checked!: () => void;
    const passed = new Promise<void>((r) => { checked = r; });
    const inFlight = fa.tx(async (t) => {
      await write(t, 'a2');
      checked();
      await gate; // a stalls between its fenced write and its commit
    });
    await passed;
    clock.advance(TTL);
    let taken: number | undefined;
    const takeover = lease(b, 'b').acquire().then((e) => { taken = e; });
    await waitFor(async () => Number((await b.get<{ n: number }>(
      "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE leases%'"))!.n) === 1, 10_000, 'the takeover waits on the lease row');
    assert.equal(taken, undefined);
    release();
    await inFlight;
    await takeover;
    assert.equal(taken, fences['a'].epoch + 1);
    await assert.rejects(write(fa, 'a3'), /lost the scheduler lease/);
    assert.deepEqual(await audit(), ['a2']);
  });
});
