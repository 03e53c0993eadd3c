import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { ErrorCode, type FerryError } from '../../../common/src/errors.js';
import { silentLogger } from '../../../common/src/log.js';
import { FencedDb, type Fence } from '../../../controller/src/ha/fenced-db.js';
import { Lease } from '../../../controller/src/ha/lease.js';
import { Leadership } from '../../../controller/src/ha/leadership.js';
import { ManualClock } from '../../../controller/src/rollouts/clock.js';
import type { Db } from '../../../controller/src/store/db.js';
import { migrateStore } from '../../../controller/src/store/migrate.js';
import { tempDir, waitFor } from '../../support/fixtures.js';
import { describeStores } from '../../support/stores.js';

const TTL = 10_000;

describeStores('scheduler lease and fencing', function (store) {
  let dir: string;
  let db: Db;
  let clock: ManualClock;
  beforeEach(async () => {
    dir = tempDir('ferry-lease-');
    db = await store.open(dir);
    await migrateStore(db);
    clock = new ManualClock();
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const lease = (owner: string, ttlMs = TTL) => new Lease({ db, name: 'scheduler', owner, ttlMs, now: () => clock.now() });
  const audit = async () => (await db.all<{ id: string }>('SELECT id FROM audit ORDER BY id')).map((r) => r.id);
  const write = (d: Db, id: string) => d.run("INSERT INTO audit (id, at, actor, action, subject, detail) VALUES (?, 1, 'x', 'x', 'x', '')", [id]);

  it('one holder at a time; another takes over only when the lease expired, with a higher epoch', async () => {
    const a = lease('a');
    const b = lease('b');
    const e1 = await a.acquire();
    assert.ok(e1 !== undefined);
    assert.equal(await b.acquire(), undefined);
    clock.advance(TTL - 1);
    assert.equal(await a.acquire(), e1, 'a renewal keeps the epoch');
    clock.advance(TTL - 1);
    assert.equal(await b.acquire(), undefined, 'renewed: not expired yet');
    clock.advance(1);
    const e2 = await b.acquire();
    assert.equal(e2, e1 + 1);
    assert.equal(await a.acquire(), undefined, 'the old holder cannot renew what it lost');
    assert.deepEqual({ ...(await b.read())!, now: 0 }, { owner: 'b', epoch: e2, expiresAt: clock.now() + TTL, acquiredAt: clock.now(), now: 0 });
    await b.release(e2!);
    assert.equal(await a.acquire(), e2! + 1, 'released: taken at once');
  });

  it('a write under a lost lease is refused and changes nothing; the new holder writes', async () => {
    const a = lease('a');
    const b = lease('b');
    const fences: Record<string, Fence | undefined> = {};
    const fa = new FencedDb(db, () => fences['a']);
    const fb = new FencedDb(db, () => fences['b']);
    fences['a'] = { name: 'scheduler', owner: 'a', epoch: (await a.acquire())! };
    await write(fa, 'a1');
    await assert.rejects(write(fb, 'b0'), (e: FerryError) => e.code === ErrorCode.Unavailable && /does not hold the scheduler lease/.test(e.message));
    clock.advance(TTL);
    fences['b'] = { name: 'scheduler', owner: 'b', epoch: (await b.acquire())! };
    // a still believes it holds the lease (it stalled and has not noticed): the fence stops it anyway.
    await assert.rejects(write(fa, 'a2'), (e: FerryError) => e.code === ErrorCode.Unavailable && e.message.includes(`it held epoch ${fences['a']!.epoch}`));
    await assert.rejects(fa.tx(async (t) => write(t, 'a3')), /lost the scheduler lease/);
    await write(fb, 'b1');
    assert.deepEqual(await audit(), ['a1', 'b1']);
  });

  it('expiry is judged by the database clock when no clock is injected', async () => {
    const a = new Lease({ db, name: 'scheduler', owner: 'a', ttlMs: 1500 });
    const b = new Lease({ db, name: 'scheduler', owner: 'b', ttlMs: 1500 });
    const e1 = await a.acquire();
    assert.equal(await b.acquire(), undefined);
    const row = (await a.read())!;
    assert.ok(Math.abs(row.now - Date.now()) < 5_000, 'database time is wall time here');
    assert.ok(row.expiresAt > row.now && row.expiresAt <= row.now + 1500);
    let e2: number | undefined;
    await waitFor(async () => (e2 = await b.acquire()) !== undefined, 10_000, 'b takes the expired lease');
    assert.equal(e2, e1! + 1);
  });

  it('leadership: a holder that cannot renew stops its work within the lease time; the other replica takes over and continues', async () => {
    const events: string[] = [];
    let stallA: Promise<never> | undefined;
    const la = lease('a');
    const stallable = { acquire: () => stallA ?? la.acquire(), release: (e: number) => la.release(e), read: () => la.read() } as unknown as Lease;
    const mk = (name: string, l: Lease) => new Leadership({
      lease: l, name: 'scheduler', owner: name, ttlMs: TTL, clock, log: silentLogger(),
      onElected: async (epoch) => { events.push(`${name} elected ${epoch}`); },
      onDeposed: async (why) => { events.push(`${name} deposed: ${why}`); },
    });
    const A = mk('a', stallable);
    const B = mk('b', lease('b'));
    await A.start();
    await B.start();
    assert.ok(A.isLeader() && !B.isLeader());
    const e1 = A.fence()!.epoch;
    // Renewals keep a in place however long it runs.
    for (let i = 0; i < 20; i++) { clock.advance(A.intervalMs); await settle(); }
    assert.deepEqual(events, [`a elected ${e1}`]);
    // a's connection hangs: its renewals never answer.
    stallA = new Promise<never>(() => undefined);
    const stalledAt = clock.now();
    while (!events.some((e) => e.startsWith('b elected'))) {
      clock.advance(A.intervalMs);
      await settle();
      assert.ok(clock.now() - stalledAt <= TTL + 2 * A.intervalMs, `no takeover after ${clock.now() - stalledAt} ms: ${events.join('; ')}`);
    }
    assert.ok(events.includes(`a deposed: the lease was not renewed within ${TTL} ms`), events.join('; '));
    assert.ok(events.indexOf(`a deposed: the lease was not renewed within ${TTL} ms`) < events.indexOf(`b elected ${e1 + 1}`), 'a stopped before b started');
    assert.equal(A.fence(), undefined);
    assert.equal(B.fence()!.epoch, e1 + 1);
    await B.stop();
    assert.equal(events.at(-1), 'b deposed: this replica is stopping');
    stallA = undefined;
    await A.stop();
  });

  it('a restarted SQLite controller takes its own lease at once (the data directory lock already makes it the only one)', async function () {
    if (store.kind !== 'sqlite') this.skip();
    const old = new Lease({ db, name: 'scheduler', owner: 'crashed', ttlMs: TTL, now: () => clock.now() });
    const e1 = await old.acquire();
    const next = new Lease({ db, name: 'scheduler', owner: 'restarted', ttlMs: TTL, now: () => clock.now(), exclusive: true });
    assert.equal(await next.acquire(), e1! + 1);
  });
});

/** Lets promise chains started by timers run to completion (database answers included). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 2));
}
