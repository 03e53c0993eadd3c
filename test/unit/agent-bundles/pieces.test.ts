import assert from 'node:assert/strict';
import { batches, BATCH_BYTES, BATCH_CHUNKS } from '../../../agent/src/bundles/chunk-fetcher.js';
import { formatBytes } from '../../../agent/src/bundles/disk-space.js';
import { checkManifest, MAX_CHUNK_BYTES } from '../../../common/src/bundle/manifest-checks.js';
import { ProgressThrottle } from '../../../agent/src/bundles/progress.js';
import { TokenBucket } from '../../../agent/src/bundles/token-bucket.js';
import { ferryError, unsignedManifest } from './fixtures.js';

const d = (i: number) => i.toString(16).padStart(64, '0');

describe('agent/bundles: pieces', () => {
  it('batches by count and by bytes, never splitting a chunk', () => {
    const n = 2 * BATCH_CHUNKS + 40;
    const small = Array.from({ length: n }, (_, i) => ({ digest: d(i), size: 1000 }));
    assert.deepEqual(batches(small).map((b) => b.length), [BATCH_CHUNKS, BATCH_CHUNKS, 40]);
    const per = Math.floor(BATCH_BYTES / (4 * 1024 * 1024)); // 4 MiB chunks per call by bytes
    const big = Array.from({ length: per + 10 }, (_, i) => ({ digest: d(i), size: 4 * 1024 * 1024 }));
    assert.ok(per < BATCH_CHUNKS, 'the byte cap binds before the count for 4 MiB chunks');
    for (const b of batches(big)) assert.ok(b.reduce((s, c) => s + c.size, 0) <= BATCH_BYTES);
    assert.deepEqual(batches(big).map((b) => b.length), [per, 10]);
    assert.deepEqual(batches([]), []);
    // Limits of its own (the bench's replay of short calls): 16 chunks or 4 MiB per call.
    assert.deepEqual(batches(small.slice(0, 40), 16, 4 * 1024 * 1024).map((b) => b.length), [16, 16, 8]);
    assert.deepEqual(batches(big.slice(0, 3), 16, 4 * 1024 * 1024).map((b) => b.length), [1, 1, 1]);
  });

  it('token bucket: unlimited returns at once; a cap is enforced across concurrent takers; abort cancels the wait', async () => {
    const t0 = performance.now();
    await new TokenBucket(0).take(1e9);
    assert.ok(performance.now() - t0 < 50);

    const bucket = new TokenBucket(1024 * 1024); // 1 MiB/s
    const t1 = performance.now();
    await Promise.all(Array.from({ length: 4 }, () => bucket.take(64 * 1024))); // 256 KiB total
    assert.ok(performance.now() - t1 >= 230, 'four takers share one rate');

    const ac = new AbortController();
    const slow = new TokenBucket(1024);
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(slow.take(1024 * 1024, ac.signal), ferryError('CANCELLED'));
  });

  it('progress throttle: leading edge, final always, observer errors contained', () => {
    const seen: number[] = [];
    const errors: unknown[] = [];
    const t = new ProgressThrottle((p) => { seen.push(p.bytesDone); if (p.bytesDone === 3) throw new Error('session closed'); }, (e) => errors.push(e), 10_000);
    t.update({ bytesDone: 1, bytesTotal: 3, bytesFetched: 0 });
    t.update({ bytesDone: 2, bytesTotal: 3, bytesFetched: 0 });
    t.final({ bytesDone: 3, bytesTotal: 3, bytesFetched: 3 });
    assert.deepEqual(seen, [1, 3]);
    assert.equal(errors.length, 1);
  });

  it('manifest checks (shared by controller and agent): overlong names, oversize chunks, inconsistent chunk sizes, bad names and versions', () => {
    const check = (m: ReturnType<typeof unsignedManifest>) => checkManifest(m, 'nothing was written');
    const f = (path: string, size = 10, chunks = [{ digest: d(1), size: 10 }]) => ({ path, mode: 0o644, size, sha256: d(9), chunks });
    assert.throws(() => check(unsignedManifest([f('a'.repeat(256))])), ferryError('BUNDLE_INVALID', 'longer than', 'nothing was written'));
    assert.throws(() => check(unsignedManifest([f('big', MAX_CHUNK_BYTES + 1, [{ digest: d(1), size: MAX_CHUNK_BYTES + 1 }])])), ferryError('BUNDLE_INVALID', 'big'));
    assert.throws(() => check(unsignedManifest([f('x'), f('y', 11, [{ digest: d(1), size: 11 }])])), ferryError('BUNDLE_INVALID', 'elsewhere'));
    assert.throws(() => check(unsignedManifest([f('x', 10, [{ digest: 'ZZ', size: 10 }])])), ferryError('BUNDLE_INVALID', 'ZZ'));
    assert.throws(() => check(unsignedManifest([f('x')], 'bad\nname')), ferryError('BUNDLE_INVALID', 'name'));
    assert.throws(() => check(unsignedManifest([f('x')], 'Upper')), ferryError('BUNDLE_INVALID', 'name'));
    assert.throws(() => check(unsignedManifest([f('x')], 'ok', '1.0 beta')), ferryError('BUNDLE_INVALID', 'version'));
    assert.throws(() => check(unsignedManifest([f('a\u0007b')])), ferryError('BUNDLE_INVALID', 'control'));
    assert.throws(() => checkManifest(unsignedManifest([f('../x')]), 'it was not committed'), ferryError('BUNDLE_INVALID', '".." component', 'it was not committed'));
    check(unsignedManifest([f('ok/nested/path.tar'), f('ok/other'), f('.hidden')]));
  });

  it('formats byte counts for people and for df -B1', () => {
    assert.equal(formatBytes(512), '512 bytes');
    assert.equal(formatBytes(1536), '1.5 KiB (1536 bytes)');
    assert.equal(formatBytes(3 * 1024 ** 3), '3.0 GiB (3221225472 bytes)');
  });
});
