import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey } from '../../../common/src/bundle/manifest.js';
import { FerryError } from '../../../common/src/errors.js';
import { silentLogger } from '../../../common/src/log.js';
import { BundleCache, type StageProgress } from '../../../agent/src/bundles/bundle-cache.js';
import { buildBundle, FakeSource, ferryError, keptChunks, onlyBundleId, seededBytes, tempDir, tree } from './fixtures.js';

describe('agent/bundles/bundle-cache: staging', () => {
  const key = generateSigningKey();
  const trustedKeys = [key.publicPem];
  let dir: string;
  let cache: BundleCache;

  beforeEach(async () => {
    dir = await tempDir();
    cache = new BundleCache(dir, silentLogger());
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const files = () => [
    { path: 'bin/k3s', data: seededBytes(700_000, 1), mode: 0o755 },
    { path: 'images/kubeedge/cloudcore.tar', data: seededBytes(1_300_000, 2), mode: 0o644 },
    { path: 'meta/secret.conf', data: seededBytes(5_000, 3), mode: 0o600 },
    { path: 'meta/empty', data: Buffer.alloc(0), mode: 0o640 },
    // The same content twice: its chunks are fetched once and written twice.
    { path: 'bin/k3s-copy', data: seededBytes(700_000, 1), mode: 0o700 },
  ];

  it('stages a bundle: identical files, exact modes, manifest written last, part files removed, held() lists it', async () => {
    const b = buildBundle(files(), key.privatePem, { name: 'k3s-offline', version: '1.30.2' });
    const src = new FakeSource(b.chunks);
    const progress: StageProgress[] = [];
    const r = await cache.stage(b.signed, { trustedKeys, source: src, onProgress: (p) => progress.push(p) });

    const unique = [...b.chunks.values()].reduce((n, c) => n + c.length, 0);
    assert.equal(r.bytesFetched, unique);
    assert.equal(r.bytesReused, 0);
    assert.equal(new Set(src.requested).size, src.requested.length, 'no chunk requested twice');
    const fd = cache.filesDir(r.bundleId);
    let newestFile = 0n;
    for (const f of files()) {
      const p = join(fd, f.path);
      assert.deepEqual(await readFile(p), f.data, f.path);
      const st = await stat(p, { bigint: true });
      assert.equal(Number(st.mode) & 0o7777, f.mode, `mode of ${f.path}`);
      if (st.mtimeNs > newestFile) newestFile = st.mtimeNs;
    }
    const m = await stat(join(dir, 'bundles', r.bundleId, 'manifest.json'), { bigint: true });
    assert.ok(m.mtimeNs >= newestFile, 'manifest.json is written after every file');
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'bundles', r.bundleId, 'manifest.json'), 'utf8')), b.signed);
    assert.deepEqual(cache.held(), [{ bundleId: r.bundleId, name: 'k3s-offline', version: '1.30.2' }]);
    assert.deepEqual(await tree(join(dir, 'bundles', r.bundleId)), ['files', ...(await tree(fd)).map((p) => `files/${p}`), 'manifest.json'].sort(),
      'part files and journal removed');
    assert.ok(!(await tree(dir)).some((p) => p.includes('.ferry-part-')), 'no temp files left');

    const total = files().reduce((n, f) => n + f.data.length, 0);
    assert.deepEqual(progress.at(-1), { bytesDone: total, bytesTotal: total, bytesFetched: unique });
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]!.bytesDone >= progress[i - 1]!.bytesDone, 'progress never goes back');

    // Idempotent: staging again moves nothing.
    const again = await cache.stage(b.signed, { trustedKeys, source: src });
    assert.equal(again.bytesFetched, 0);
    assert.equal(src.requested.length, b.chunks.size);
  });

  it('resumes after an abort mid-fetch, in a new cache instance (agent restart), without refetching any verified chunk', async () => {
    const b = buildBundle(files(), key.privatePem);
    const src = new FakeSource(b.chunks);
    const ac = new AbortController();
    src.onChunk = (n) => { if (n === 40) ac.abort(); };
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src, signal: ac.signal, concurrency: 2 }), ferryError('CANCELLED', 'cancelled'));

    const id = await onlyBundleId(dir);
    const filesDir = join(dir, 'bundles', id, 'files');
    // Files finished before the abort are complete; nothing partial sits at a manifest path.
    for (const f of files()) {
      const got = await readFile(join(filesDir, f.path)).catch(() => undefined);
      if (got) assert.deepEqual(got, f.data, `${f.path} is either absent or complete`);
    }
    assert.ok(!(await tree(filesDir)).some((p) => p.includes('.ferry-part-')), 'no temp file among the files');
    assert.throws(() => cache.filesDir(id), ferryError('NOT_FOUND'));
    const staged = await keptChunks(dir, id);
    assert.ok(staged.size >= 30 && staged.size < b.chunks.size, `some chunks kept (${staged.size} of ${b.chunks.size})`);
    // Debris a kill mid-write could leave behind.
    await writeFile(join(dir, 'bundles', id, 'parts', '.ferry-part-999'), 'half a file');

    const restarted = new BundleCache(dir, silentLogger());
    const src2 = new FakeSource(b.chunks);
    const r = await restarted.stage(b.signed, { trustedKeys, source: src2 });
    for (const d of src2.requested) assert.ok(!staged.has(d), `verified chunk ${d} was fetched again`);
    assert.equal(src2.requested.length, b.chunks.size - staged.size);
    const stagedBytes = [...staged].reduce((n, d) => n + b.chunks.get(d)!.length, 0);
    assert.equal(r.bytesReused, stagedBytes);
    for (const f of files()) assert.deepEqual(await readFile(join(restarted.filesDir(id), f.path)), f.data);
    assert.ok(!(await tree(join(dir, 'bundles', id))).some((p) => p.includes('.ferry-part-')), 'stale temp file swept');
  });

  it('a part file lost after an interruption is rebuilt from chunks kept in another part file, not fetched again', async () => {
    const b = buildBundle(files(), key.privatePem);
    const src = new FakeSource(b.chunks);
    const ac = new AbortController();
    src.onChunk = (n) => { if (n === 40) ac.abort(); };
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src, signal: ac.signal, concurrency: 1 }), ferryError('CANCELLED'));
    const id = await onlyBundleId(dir);
    const kept = await keptChunks(dir, id);
    const m = JSON.parse(b.signed.manifest) as { files: Array<{ path: string }> };
    const copy = m.files.findIndex((f) => f.path === 'bin/k3s-copy');
    await rm(join(dir, 'bundles', id, 'parts', `.ferry-part-${copy}`), { force: true });
    const src2 = new FakeSource(b.chunks);
    const r = await cache.stage(b.signed, { trustedKeys, source: src2 });
    for (const d of src2.requested) assert.ok(!kept.has(d), `kept chunk ${d} was fetched again`);
    for (const f of files()) assert.deepEqual(await readFile(join(cache.filesDir(r.bundleId), f.path)), f.data);
  });

  it('rides out a cut link: retries the rest of the batch and fetches no chunk twice', async () => {
    const b = buildBundle(files(), key.privatePem);
    const src = new FakeSource(b.chunks);
    src.failAfter = 25;
    const r = await cache.stage(b.signed, { trustedKeys, source: src, retryDelayMs: 5 });
    // The same stage over an unbroken link, for the number of calls it takes.
    const cleanDir = await tempDir();
    const clean = new FakeSource(b.chunks);
    await new BundleCache(cleanDir, silentLogger()).stage(b.signed, { trustedKeys, source: clean }).finally(() => rm(cleanDir, { recursive: true, force: true }));
    assert.ok(src.calls > clean.calls, 'a call was retried');
    const delivered = new Map<string, number>();
    // Each digest is requested at most twice: once in the cut call (not delivered) and once in the retry.
    for (const d of src.requested) delivered.set(d, (delivered.get(d) ?? 0) + 1);
    assert.ok([...delivered.values()].every((n) => n <= 2));
    assert.equal(r.bytesFetched, [...b.chunks.values()].reduce((n, c) => n + c.length, 0), 'every chunk counted exactly once');
    for (const f of files()) assert.deepEqual(await readFile(join(cache.filesDir(r.bundleId), f.path)), f.data);
  });

  it('gives up on a link that keeps failing without progress, with UNAVAILABLE and a hint', async () => {
    const b = buildBundle([{ path: 'small', data: seededBytes(10_000, 6) }], key.privatePem); // one batch
    const src = new FakeSource(b.chunks);
    let calls = 0;
    src.fetch = async function* () {
      calls++;
      yield* [];
      throw new FerryError('UNAVAILABLE', 'no route to controller');
    };
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src, retries: 2, retryDelayMs: 1 }), ferryError('UNAVAILABLE', 'no route to controller', 'demo:1.0.0'));
    assert.equal(calls, 3, 'one call and two retries');
  });

  it('stages the same bundle twice concurrently: both succeed, every chunk is fetched once', async () => {
    const b = buildBundle(files(), key.privatePem);
    const src = new FakeSource(b.chunks);
    src.delayMs = 1;
    const [r1, r2] = await Promise.all([
      cache.stage(b.signed, { trustedKeys, source: src }),
      cache.stage(b.signed, { trustedKeys, source: src }),
    ]);
    assert.equal(r1.bundleId, r2.bundleId);
    assert.equal(src.requested.length, b.chunks.size);
    assert.equal(r1.bytesFetched + r2.bytesFetched, [...b.chunks.values()].reduce((n, c) => n + c.length, 0));
    for (const f of files()) assert.deepEqual(await readFile(join(cache.filesDir(r1.bundleId), f.path)), f.data);
  });

  it('stages two bundles sharing chunks concurrently: neither cleans up chunks the other still needs', async () => {
    const shared = seededBytes(1_500_000, 9);
    const a = buildBundle([{ path: 'a/shared.bin', data: shared }, { path: 'a/own', data: seededBytes(300_000, 10) }], key.privatePem, { name: 'a' });
    const b = buildBundle([{ path: 'b/shared.bin', data: shared }, { path: 'b/own', data: seededBytes(400_000, 11) }], key.privatePem, { name: 'b' });
    const srcA = new FakeSource(a.chunks);
    const srcB = new FakeSource(b.chunks);
    srcA.delayMs = 2;
    const [ra, rb] = await Promise.all([cache.stage(a.signed, { trustedKeys, source: srcA }), cache.stage(b.signed, { trustedKeys, source: srcB })]);
    assert.deepEqual(await readFile(join(cache.filesDir(ra.bundleId), 'a/shared.bin')), shared);
    assert.deepEqual(await readFile(join(cache.filesDir(rb.bundleId), 'b/shared.bin')), shared);
    assert.deepEqual(cache.held().map((h) => h.name).sort(), ['a', 'b']);
  });

  it('remove() deletes a bundle; filesDir() then refuses it', async () => {
    const b = buildBundle(files().slice(0, 2), key.privatePem);
    const r = await cache.stage(b.signed, { trustedKeys, source: new FakeSource(b.chunks) });
    assert.equal(await cache.remove(r.bundleId), true);
    assert.deepEqual(cache.held(), []);
    assert.throws(() => cache.filesDir(r.bundleId), ferryError('NOT_FOUND', r.bundleId));
    assert.equal(await cache.remove(r.bundleId), false);
    await assert.rejects(cache.remove('../etc'), ferryError('DIGEST_INVALID'));
  });

  it('prune() drops the part files of an abandoned stage but not those of a running stage', async () => {
    const b = buildBundle(files().slice(0, 2), key.privatePem);
    const ac = new AbortController();
    const src = new FakeSource(b.chunks);
    src.onChunk = (n) => { if (n === 10) ac.abort(); };
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src, signal: ac.signal, concurrency: 1 }), ferryError('CANCELLED'));
    const pruned = await cache.prune();
    assert.ok(pruned.removed === 1 && pruned.bytes > 0, JSON.stringify(pruned));
    assert.deepEqual(await tree(join(dir, 'bundles')), [], 'the abandoned stage is gone');

    // While a stage runs, its chunks are safe from a concurrent prune.
    const slow = new FakeSource(b.chunks);
    slow.delayMs = 2;
    let prunedMid: Promise<{ removed: number }> | undefined;
    slow.onChunk = (n) => { if (n === 20) prunedMid = cache.prune(); };
    const r = await cache.stage(b.signed, { trustedKeys, source: slow });
    assert.equal((await prunedMid!).removed, 0);
    assert.equal(slow.requested.length, b.chunks.size);
    for (const f of files().slice(0, 2)) assert.deepEqual(await readFile(join(cache.filesDir(r.bundleId), f.path)), f.data);
  });

  it('throttles progress to about 4 per second', async () => {
    const b = buildBundle([{ path: 'big', data: seededBytes(2_000_000, 4) }], key.privatePem);
    const src = new FakeSource(b.chunks);
    src.delayMs = 8; // ~120 chunks × 8 ms ≈ 1 s
    let calls = 0;
    const t0 = performance.now();
    await cache.stage(b.signed, { trustedKeys, source: src, concurrency: 1, onProgress: () => calls++ });
    const secs = (performance.now() - t0) / 1000;
    assert.ok(b.chunks.size > 60);
    assert.ok(calls <= secs * 4 + 3, `${calls} progress reports in ${secs.toFixed(2)} s`);
    assert.ok(calls >= 2);
  });

  it('caps bandwidth: 1 MiB at 2 MiB/s takes at least 0.4 s', async () => {
    const b = buildBundle([{ path: 'one-mib', data: seededBytes(1024 * 1024, 5) }], key.privatePem);
    const t0 = performance.now();
    await cache.stage(b.signed, { trustedKeys, source: new FakeSource(b.chunks), bandwidthBytesPerSec: 2 * 1024 * 1024 });
    const secs = (performance.now() - t0) / 1000;
    assert.ok(secs >= 0.4, `took ${secs.toFixed(3)} s`);
  });

  it('refuses a manifest whose bundle id differs from the announced one', async () => {
    const b = buildBundle(files().slice(0, 1), key.privatePem);
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: new FakeSource(b.chunks), expectedBundleId: 'f'.repeat(64) }), ferryError('BUNDLE_INVALID', 'f'.repeat(64)));
    assert.deepEqual(await tree(dir), []);
  });
});
