import assert from 'node:assert/strict';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey } from '../../../common/src/bundle/manifest.js';
import { silentLogger } from '../../../common/src/log.js';
import { BundleCache } from '../../../agent/src/bundles/bundle-cache.js';
import { buildBundle, FakeSource, seededBytes, tempDir, tree, type TestBundle } from './fixtures.js';

/** Chunks of `next` that `prev` does not have: exactly what an upgrade should move. */
function delta(prev: TestBundle, next: TestBundle): Map<string, number> {
  return new Map([...next.chunks].filter(([d]) => !prev.chunks.has(d)).map(([d, b]) => [d, b.length]));
}

describe('agent/bundles/bundle-cache: upgrades reuse local bytes', () => {
  const key = generateSigningKey();
  const trustedKeys = [key.publicPem];
  let dir: string;
  let cache: BundleCache;

  const f1 = seededBytes(3 * 1024 * 1024, 21);
  const f1v2 = Buffer.concat([f1.subarray(0, 1_500_000), seededBytes(100_000, 22), f1.subarray(1_600_000)]);
  const f2 = seededBytes(1024 * 1024, 23);
  const f3 = seededBytes(500_000, 24);
  const f4 = seededBytes(20_000, 25);
  const a = buildBundle([{ path: 'images/app.tar', data: f1 }, { path: 'bin/tool', data: f2, mode: 0o755 }, { path: 'crds/old.yaml', data: f3 }], key.privatePem, { name: 'app', version: '1' });
  const b = buildBundle([{ path: 'images/app.tar', data: f1v2 }, { path: 'bin/tool-renamed', data: f2, mode: 0o755 }, { path: 'crds/new.yaml', data: f4 }], key.privatePem, { name: 'app', version: '2' });

  beforeEach(async () => {
    dir = await tempDir();
    cache = new BundleCache(dir, silentLogger());
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('B after A fetches only the chunks A lacks, reading the rest out of A\'s files', async () => {
    const ra = await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    assert.deepEqual(await tree(join(dir, 'bundles', ra.bundleId, 'parts')), [], 'A left no part files: reuse must come from its files');

    const src = new FakeSource(b.chunks);
    const rb = await cache.stage(b.signed, { trustedKeys, source: src });
    const want = delta(a, b);
    assert.deepEqual(new Set(src.requested), new Set(want.keys()));
    assert.equal(src.requested.length, want.size);
    const changed = 100_000 + f4.length;
    assert.equal(rb.bytesFetched, [...want.values()].reduce((n, s) => n + s, 0));
    // Content-defined chunking: the edit disturbs the chunks around it only (max chunk 64 KiB here).
    assert.ok(rb.bytesFetched <= changed + 4 * 64 * 1024, `fetched ${rb.bytesFetched} for ${changed} changed bytes`);
    assert.ok(rb.bytesFetched < 0.1 * (f1v2.length + f2.length + f4.length));
    assert.ok(rb.bytesReused > 4_000_000);

    const fb = cache.filesDir(rb.bundleId);
    assert.deepEqual(await readFile(join(fb, 'images/app.tar')), f1v2);
    assert.deepEqual(await readFile(join(fb, 'bin/tool-renamed')), f2);
    assert.deepEqual(await readFile(join(fb, 'crds/new.yaml')), f4);
    assert.deepEqual(cache.held().map((h) => h.version).sort(), ['1', '2']);
    assert.deepEqual(await readFile(join(cache.filesDir(ra.bundleId), 'images/app.tar')), f1, 'A untouched');
  });

  it('does not trust A\'s files blindly: a byte changed in place is caught by the chunk hash and that chunk is fetched', async () => {
    const ra = await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    const fh = await open(join(cache.filesDir(ra.bundleId), 'bin/tool'), 'r+');
    await fh.write(Buffer.from([f2[300_000]! ^ 0xff]), 0, 1, 300_000);
    await fh.close();

    const src = new FakeSource(b.chunks);
    const rb = await cache.stage(b.signed, { trustedKeys, source: src });
    const want = delta(a, b);
    const extra = src.requested.filter((d) => !want.has(d));
    assert.equal(extra.length, 1, 'exactly the chunk covering the damaged byte was fetched in addition');
    assert.deepEqual(await readFile(join(cache.filesDir(rb.bundleId), 'bin/tool-renamed')), f2);
  });

  it('still works when A is removed between two stages (nothing to reuse: fetches everything)', async () => {
    const ra = await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    await cache.remove(ra.bundleId);
    const src = new FakeSource(b.chunks);
    const rb = await cache.stage(b.signed, { trustedKeys, source: src });
    assert.equal(src.requested.length, b.chunks.size);
    assert.equal(rb.bytesReused, 0);
  });
});
