import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import type { Db } from '../../../controller/src/store/db.js';
import { migrateStore } from '../../../controller/src/store/migrate.js';
import { RelayStore } from '../../../controller/src/store/relays.js';
import { tempDir } from '../../support/fixtures.js';
import { describeStores } from '../../support/stores.js';

describeStores('relay store (migration 16)', function (store) {
  let dir: string;
  let db: Db;
  beforeEach(async () => {
    dir = tempDir('ferry-relay-store-');
    db = await store.open(dir);
    await migrateStore(db);
  });
  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('enables, reports, replaces and disables; large cache bounds and times survive as numbers', async () => {
    const relays = new RelayStore(db);
    const base = { agentId: 'ag-1', serves: 'site=plant-7', cacheBytes: 20 * 1024 ** 4, listen: '0.0.0.0:7444', advertise: '', enabledBy: 'operator:olga', enabledAt: 1_796_000_000_000 };
    const r = await relays.enable(base);
    assert.deepEqual({ ...r }, { ...base, registryListen: '', address: '', status: null, statusAt: null });
    const status = { address: '10.7.0.2:7444', cacheBytes: base.cacheBytes, cacheUsedBytes: 5, cacheChunks: 1, hits: 2, misses: 1, bytesFromUpstream: 5, bytesServed: 10, error: '', upstreamBytesPerSec: 0, droppedCorrupt: 0, registryAddress: '' };
    assert.equal(await relays.report('ag-1', status, 1_796_000_000_500), true, 'a new address');
    assert.equal(await relays.report('ag-1', { ...status, hits: 3 }, 1_796_000_001_000), false, 'same address');
    assert.equal(await relays.report('ag-2', status, 1), false, 'not a relay: nothing stored');
    const got = (await relays.get('ag-1'))!;
    assert.equal(got.address, '10.7.0.2:7444');
    assert.equal(got.status!.hits, 3);
    assert.equal(got.statusAt, 1_796_000_001_000);
    // Enabling again replaces the settings and forgets the old report.
    await relays.enable({ ...base, serves: 'site=plant-8', enabledAt: base.enabledAt + 1 });
    assert.deepEqual((await relays.list()).map((x) => [x.serves, x.address, x.status]), [['site=plant-8', '', null]]);
    assert.equal(await relays.disable('ag-1'), true);
    assert.equal(await relays.disable('ag-1'), false);
    assert.deepEqual(await relays.list(), []);
  });
});
