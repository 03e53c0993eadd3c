// Sub-chunk delta fetch (agent/src/bundles/delta-fetch.ts) through the bundle
// cache: a changed chunk whose file has an older version on the host is
// assembled from the old file's ~4 KiB sub-chunks plus fetched byte ranges,
// and always checked against its full digest.
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkBuffer } from '../../../common/src/bundle/fastcdc.js';
import { bundleId, generateSigningKey } from '../../../common/src/bundle/manifest.js';
import { SKETCH_CHUNKER, sketchOf } from '../../../common/src/bundle/sketch.js';
import { ErrorCode } from '../../../common/src/errors.js';
import { silentLogger } from '../../../common/src/log.js';
import { BundleCache } from '../../../agent/src/bundles/bundle-cache.js';
import type { SketchReply } from '../../../agent/src/bundles/chunk-source.js';
import { unmatchedRegions } from '../../../agent/src/bundles/delta-fetch.js';
import { buildBundle, FakeSource, ferryError, keptChunks, seededBytes, SketchingSource, tempDir, type TestBundle } from './fixtures.js';

/** Bundle chunks of ~256 KiB: large next to the 4 KiB sub-chunks, small enough for a fast test. */
const CHUNKER = { minSize: 64 * 1024, avgSize: 256 * 1024, maxSize: 1024 * 1024 };

/** `base` with `n` scattered in-place edits of `len` bytes (same size, so chunk offsets line up with `base`). */
function scatteredEdits(base: Buffer, n: number, len: number, seed: number): Buffer {
  const out = Buffer.from(base);
  for (let i = 0; i < n; i++) seededBytes(len, seed + i).copy(out, Math.floor(((i + 0.5) * out.length) / n));
  return out;
}

/** Bytes of `neu` in sketch-sized sub-chunks that `old` lacks: the least a delta fetch can move. */
function novelSubChunkBytes(old: Buffer, neu: Buffer): number {
  const have = new Set(chunkBuffer(old, SKETCH_CHUNKER).map((c) => c.digest));
  return chunkBuffer(neu, SKETCH_CHUNKER).filter((c) => !have.has(c.digest)).reduce((s, c) => s + c.length, 0);
}

/** Chunks of `next` not in `prev`, with their bytes. */
function changed(prev: TestBundle, next: TestBundle): Map<string, number> {
  return new Map([...next.chunks].filter(([d]) => !prev.chunks.has(d)).map(([d, b]) => [d, b.length]));
}

const sumOf = (m: Map<string, number>) => [...m.values()].reduce((s, x) => s + x, 0);

describe('agent/bundles: sub-chunk delta fetch', () => {
  const key = generateSigningKey();
  const trustedKeys = [key.publicPem];
  const v1 = seededBytes(4 * 1024 * 1024, 31);
  // Six scattered 300-byte edits and a 3,000-byte insertion: about what a rebuilt binary looks like, scaled down.
  const edited = scatteredEdits(v1, 6, 300, 40);
  const v2 = Buffer.concat([edited.subarray(0, 3_000_000), seededBytes(3000, 50), edited.subarray(3_000_000)]);
  const a = buildBundle([{ path: 'bin/app', data: v1, mode: 0o755 }], key.privatePem, { name: 'app', version: '1', chunker: CHUNKER });
  const b = buildBundle([{ path: 'bin/app', data: v2, mode: 0o755 }], key.privatePem, { name: 'app', version: '2', chunker: CHUNKER });
  const want = changed(a, b);
  let dir: string;
  let cache: BundleCache;

  beforeEach(async () => {
    dir = await tempDir('ferry-delta-fetch-');
    cache = new BundleCache(dir, silentLogger());
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('an upgrade that changes a few scattered KiB fetches about those bytes, not whole chunks', async () => {
    await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    const src = new SketchingSource(b.chunks);
    const rb = await cache.stage(b.signed, { trustedKeys, source: src });
    assert.deepEqual(await readFile(join(cache.filesDir(rb.bundleId), 'bin/app')), v2);
    assert.deepEqual(src.requested, [], 'no chunk fetched whole');
    assert.equal(src.sketchCalls, 1, 'one sketch call for all the changed chunks');
    const novel = novelSubChunkBytes(v1, v2);
    const ranges = src.rangeCalls.reduce((s, r) => s + r.bytes, 0);
    // A sketch starts at its chunk's first byte, so each chunk's first sub-chunk may not line up with the old file's: one max sub-chunk each.
    assert.ok(ranges <= novel + want.size * SKETCH_CHUNKER.maxSize, `ranges ${ranges} for ${novel} novel bytes`);
    assert.ok(rb.bytesFetched > ranges, 'sketch bytes are counted as fetched');
    assert.ok(rb.bytesFetched <= ranges + want.size * 1024, `fetched ${rb.bytesFetched}: ranges ${ranges} + sketches`);
    assert.ok(rb.bytesFetched < 0.2 * sumOf(want), `fetched ${rb.bytesFetched} vs ${sumOf(want)} in whole changed chunks`);
  });

  it('seeds from StageOptions.localFiles (the running binary of an agent upgrade)', async () => {
    const running = join(dir, 'ferry-agent');
    await writeFile(running, v1);
    const src = new SketchingSource(b.chunks);
    const rb = await cache.stage(b.signed, { trustedKeys, source: src, localFiles: [running] });
    assert.deepEqual(await readFile(join(cache.filesDir(rb.bundleId), 'bin/app')), v2);
    assert.deepEqual(src.requested, []);
    assert.ok(rb.bytesFetched < 0.2 * sumOf(want), `fetched ${rb.bytesFetched}`);
  });

  it('without a seed (a bundle of another name) asks for no sketch: no extra round trip', async () => {
    const other = buildBundle([{ path: 'bin/app', data: v1, mode: 0o755 }], key.privatePem, { name: 'other', version: '1', chunker: CHUNKER });
    await cache.stage(other.signed, { trustedKeys, source: new FakeSource(other.chunks) });
    const src = new SketchingSource(b.chunks);
    const rb = await cache.stage(b.signed, { trustedKeys, source: src });
    assert.equal(src.sketchCalls, 0);
    assert.equal(rb.bytesFetched, sumOf(want), 'whole changed chunks (the rest is reused whole from the other bundle)');
  });

  it('a lying sketch (sub-digests that match the old bytes) still yields the right bytes: the chunk check fails and it is fetched whole', async () => {
    const same = scatteredEdits(v1, 6, 300, 40);
    const c = buildBundle([{ path: 'bin/app', data: same, mode: 0o755 }], key.privatePem, { name: 'app', version: '3', chunker: CHUNKER });
    const offsets = new Map<string, number>();
    let off = 0;
    for (const ch of c.manifest.files[0]!.chunks) {
      offsets.set(ch.digest, off);
      off += ch.size;
    }
    await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    const src = new SketchingSource(c.chunks);
    // The sketch of the OLD bytes at the chunk's place: every sub-digest "matches" what the host holds.
    src.lie = (digest) => sketchOf(v1.subarray(offsets.get(digest)!, offsets.get(digest)! + c.chunks.get(digest)!.length));
    const rc = await cache.stage(c.signed, { trustedKeys, source: src });
    assert.deepEqual(await readFile(join(cache.filesDir(rc.bundleId), 'bin/app')), same);
    const lied = changed(a, c);
    assert.deepEqual(new Set(src.requested), new Set(lied.keys()), 'every lied-about chunk fetched whole');
    assert.ok(rc.bytesFetched >= sumOf(lied));
  });

  it('ranges with wrong bytes, or a sketch that does not add up to the chunk, fall back to whole chunks', async () => {
    await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    const src = new SketchingSource(b.chunks);
    const [first, second] = [...want.keys()];
    src.corruptRanges.add(first!);
    src.lie = (digest, real) => (digest === second ? { lengths: real.lengths.slice(1), hashes: real.hashes.subarray(8) } : real);
    const rb = await cache.stage(b.signed, { trustedKeys, source: src });
    assert.deepEqual(await readFile(join(cache.filesDir(rb.bundleId), 'bin/app')), v2);
    assert.deepEqual(new Set(src.requested), new Set([first, second]));
  });

  it('a source without the RPCs (UNIMPLEMENTED) fetches whole chunks and counts no sketch bytes', async () => {
    await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    const src = new SketchingSource(b.chunks);
    let asked = 0;
    src.sketch = async (): Promise<SketchReply> => {
      asked++;
      return undefined as unknown as SketchReply;
    };
    const rb = await cache.stage(b.signed, { trustedKeys, source: src });
    assert.equal(asked, 1);
    assert.deepEqual(await readFile(join(cache.filesDir(rb.bundleId), 'bin/app')), v2);
    assert.deepEqual(new Set(src.requested), new Set(want.keys()));
    assert.equal(rb.bytesFetched, sumOf(want));
  });

  it('respects the bandwidth cap: sketch and range bytes are paced like chunks', async () => {
    await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    const many = scatteredEdits(v1, 48, 300, 60);
    const c = buildBundle([{ path: 'bin/app', data: many, mode: 0o755 }], key.privatePem, { name: 'app', version: '4', chunker: CHUNKER });
    const rate = 128 * 1024;
    const src = new SketchingSource(c.chunks);
    const t0 = performance.now();
    const rc = await cache.stage(c.signed, { trustedKeys, source: src, bandwidthBytesPerSec: rate });
    const ms = performance.now() - t0;
    assert.deepEqual(src.requested, []);
    assert.ok(rc.bytesFetched > 3 * 64 * 1024, `test needs more than the bucket's burst, fetched ${rc.bytesFetched}`);
    // The bucket starts empty and holds at most a 64 KiB burst, so this is a floor whatever the machine.
    const floor = ((rc.bytesFetched - 64 * 1024) / rate) * 1000;
    assert.ok(ms >= floor - 50, `staged ${rc.bytesFetched} bytes in ${ms.toFixed(0)} ms under a ${rate} B/s cap (at least ${floor.toFixed(0)} ms)`);
  });

  it('resumes after an interruption: chunks assembled before it are kept, the rest is delta-fetched again', async () => {
    await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    assert.ok(want.size >= 3, `test needs several changed chunks, has ${want.size}`);
    const ac = new AbortController();
    const first = new SketchingSource(b.chunks);
    first.onRanges = (calls) => {
      if (calls === 2) ac.abort();
    };
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: first, signal: ac.signal }), ferryError(ErrorCode.Cancelled));
    const kept = [...(await keptChunks(dir, bundleId(b.signed)))].filter((d) => want.has(d));
    assert.ok(kept.length >= 1, 'a chunk assembled before the interruption was kept');

    const second = new SketchingSource(b.chunks);
    const rb = await cache.stage(b.signed, { trustedKeys, source: second });
    assert.deepEqual(await readFile(join(cache.filesDir(rb.bundleId), 'bin/app')), v2);
    assert.deepEqual(second.requested, []);
    for (const d of kept) assert.ok(!second.rangeCalls.some((r) => r.digest === d), `kept chunk ${d} fetched again`);
    assert.ok(second.rangeCalls.length >= 1);
  });
});

describe('agent/bundles: seed regions for the delta fetch', () => {
  it('are the runs of a seed file\'s chunks the new bundle does not list, adjacent ones merged', () => {
    const chunks = [{ digest: 'a', size: 10 }, { digest: 'x', size: 5 }, { digest: 'y', size: 7 }, { digest: 'b', size: 3 }, { digest: 'z', size: 4 }];
    const bundle = new Map([['a', 10], ['b', 3]]);
    assert.deepEqual(unmatchedRegions('/f', chunks, bundle), [{ path: '/f', offset: 10, length: 12 }, { path: '/f', offset: 25, length: 4 }]);
    assert.deepEqual(unmatchedRegions('/f', chunks.slice(0, 1), bundle), []);
  });
});
