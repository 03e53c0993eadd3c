import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore } from '../../../common/src/bundle/chunk-store.js';
import {
  BundleError,
  ChunkCorruptError,
  ChunkDigestMismatchError,
  ChunkNotFoundError,
  InvalidDigestError,
} from '../../../common/src/bundle/errors.js';
import { seededBytes } from './prng.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Every path under `dir`, relative, sorted: the "nothing left behind" oracle. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  }
  return out.sort();
}

function isCode(code: string, cls: new (...a: never[]) => BundleError) {
  return (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.ok(e.hint.length > 0);
    return true;
  };
}

async function drain(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of s) parts.push(p);
  return Buffer.concat(parts);
}

describe('bundle/chunk-store', () => {
  let dir: string;
  let store: ChunkStore;
  const a = seededBytes(300_000, 1);
  const b = seededBytes(1234, 2);
  const da = sha(a);
  const db = sha(b);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-chunks-'));
    store = new ChunkStore(dir);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('put/has/get round trip under DIR/sha256/ab/abcd…', async () => {
    assert.equal(await store.has(da), false);
    assert.equal(await store.put(da, a), true);
    assert.equal(await store.put(da, a), false, 'second put is a no-op');
    assert.equal(await store.has(da), true);
    assert.ok((await store.get(da)).equals(a));
    assert.equal(store.pathOf(da), join(dir, 'sha256', da.slice(0, 2), da));
    assert.deepEqual(await tree(dir), ['sha256', `sha256/${da.slice(0, 2)}`, `sha256/${da.slice(0, 2)}/${da}`]);
  });

  it('stores the empty chunk', async () => {
    const e = sha(Buffer.alloc(0));
    assert.equal(await store.put(e, Buffer.alloc(0)), true);
    assert.equal((await store.get(e)).length, 0);
    assert.equal(await store.verify(e), 'ok');
  });

  it('files are 0644 and directories 0755 regardless of umask', async () => {
    const old = process.umask(0o077);
    try {
      await store.put(da, a);
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(store.pathOf(da))).mode & 0o777, 0o644);
    assert.equal((await stat(join(dir, 'sha256', da.slice(0, 2)))).mode & 0o777, 0o755);
    assert.equal((await stat(join(dir, 'sha256'))).mode & 0o777, 0o755);
  });

  it('a mismatching put throws CHUNK_DIGEST_MISMATCH and leaves nothing behind', async () => {
    await assert.rejects(store.put(db, a), isCode('CHUNK_DIGEST_MISMATCH', ChunkDigestMismatchError));
    await assert.rejects(store.put(da, Buffer.concat([a, Buffer.from([0])])), (e: unknown) => {
      assert.ok(e instanceof ChunkDigestMismatchError);
      assert.equal(e.expected, da);
      return true;
    });
    assert.deepEqual(await tree(dir), []);
    assert.equal(await store.has(db), false);
  });

  describe('digest validation (path traversal)', () => {
    const hostile = [
      '../../../../etc/passwd',
      `../${'a'.repeat(61)}`,
      'A'.repeat(64),
      'a'.repeat(63),
      'a'.repeat(65),
      `sha256:${'a'.repeat(64)}`,
      `${'a'.repeat(62)}/x`,
      `${'a'.repeat(63)}\0`,
      '',
    ];
    for (const d of hostile) {
      const label = d.length > 24 ? `${JSON.stringify(d.slice(0, 12) + '…' + d.slice(-6))} (${d.length} chars)` : JSON.stringify(d);
      it(`rejects ${label} before touching the disk`, async () => {
        const invalid = isCode('DIGEST_INVALID', InvalidDigestError);
        assert.throws(() => store.pathOf(d), invalid);
        await assert.rejects(store.has(d), invalid);
        await assert.rejects(store.put(d, a), invalid);
        await assert.rejects(store.get(d), invalid);
        await assert.rejects(store.createReadStream(d), invalid);
        await assert.rejects(store.verify(d), invalid);
        await assert.rejects(store.remove(d), invalid);
        assert.deepEqual(await tree(dir), []);
      });
    }
  });

  it('missing chunks: get/createReadStream throw CHUNK_NOT_FOUND, verify says missing', async () => {
    await assert.rejects(store.get(da), isCode('CHUNK_NOT_FOUND', ChunkNotFoundError));
    await assert.rejects(store.createReadStream(da), isCode('CHUNK_NOT_FOUND', ChunkNotFoundError));
    assert.equal(await store.verify(da), 'missing');
  });

  it('createReadStream streams verified content', async () => {
    await store.put(da, a);
    assert.ok((await drain(await store.createReadStream(da))).equals(a));
  });

  describe('corruption', () => {
    async function corrupt(d: string): Promise<void> {
      const p = store.pathOf(d);
      const bytes = await readFile(p);
      bytes[bytes.length >> 1] ^= 1;
      await writeFile(p, bytes);
    }

    it('verify reports a corrupted chunk and removes it', async () => {
      await store.put(da, a);
      await store.put(db, b);
      assert.equal(await store.verify(da), 'ok');
      await corrupt(da);
      assert.equal(await store.verify(da), 'corrupt');
      assert.equal(await store.has(da), false);
      assert.equal(await store.verify(db), 'ok');
    });

    it('get throws CHUNK_CORRUPT and removes the chunk', async () => {
      await store.put(db, b);
      await corrupt(db);
      await assert.rejects(store.get(db), isCode('CHUNK_CORRUPT', ChunkCorruptError));
      assert.equal(await store.has(db), false);
    });

    it('a verifying read stream fails with CHUNK_CORRUPT at its end', async () => {
      await store.put(da, a);
      await corrupt(da);
      await assert.rejects(drain(await store.createReadStream(da)), isCode('CHUNK_CORRUPT', ChunkCorruptError));
      assert.equal(await store.has(da), false);
    });

    it('verify: false streams raw bytes without checking', async () => {
      await store.put(db, b);
      await corrupt(db);
      const raw = await drain(await store.createReadStream(db, { verify: false }));
      assert.equal(raw.length, b.length);
      assert.notEqual(sha(raw), db);
    });

    it('verifyAll checks everything and lists what it evicted', async () => {
      await store.put(da, a);
      await store.put(db, b);
      await corrupt(db);
      assert.deepEqual(await store.verifyAll(), { checked: 2, corrupt: [db] });
      assert.deepEqual(await store.stats(), { count: 1, bytes: a.length });
    });
  });

  it('list/stats/remove', async () => {
    assert.deepEqual(await store.stats(), { count: 0, bytes: 0 });
    await store.put(da, a);
    await store.put(db, b);
    // Junk that must be ignored: a temp file, a stray file, a misplaced chunk-like name.
    await writeFile(join(dir, 'sha256', da.slice(0, 2), `.tmp-${da.slice(0, 16)}-1-abc`), 'partial');
    await writeFile(join(dir, 'sha256', 'README'), 'x');
    await mkdir(join(dir, 'sha256', 'zz'));
    await writeFile(join(dir, 'sha256', 'zz', db), b);
    const listed: string[] = [];
    for await (const d of store.list()) listed.push(d);
    assert.deepEqual(listed.sort(), [da, db].sort());
    assert.deepEqual(await store.stats(), { count: 2, bytes: a.length + b.length });
    assert.equal(await store.remove(da), true);
    assert.equal(await store.remove(da), false);
    assert.deepEqual(await store.stats(), { count: 1, bytes: b.length });
  });

  it('list on a store that was never written is empty', async () => {
    const fresh = new ChunkStore(join(dir, 'does-not-exist'));
    for await (const _ of fresh.list()) assert.fail('nothing expected');
    assert.deepEqual(await fresh.stats(), { count: 0, bytes: 0 });
  });

  it('concurrent puts of the same chunk store it once and leave no temp files', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => new ChunkStore(dir).put(da, a)));
    assert.ok(results.includes(true));
    assert.deepEqual(await tree(join(dir, 'sha256')), [da.slice(0, 2), `${da.slice(0, 2)}/${da}`]);
    assert.equal(await store.verify(da), 'ok');
  });

  it('recreates a shard directory removed behind its back', async () => {
    await store.put(da, a);
    await rm(join(dir, 'sha256'), { recursive: true });
    assert.equal(await store.put(da, a), true);
    assert.equal(await store.verify(da), 'ok');
  });

  it('sweepTempFiles removes only stale temp files', async () => {
    await store.put(da, a);
    const shard = join(dir, 'sha256', da.slice(0, 2));
    const stale = join(shard, '.tmp-stale');
    const fresh = join(shard, '.tmp-fresh');
    await writeFile(stale, 'x');
    await writeFile(fresh, 'y');
    const old = (Date.now() - 2 * 3600_000) / 1000;
    await utimes(stale, old, old);
    assert.equal(await store.sweepTempFiles(), 1);
    assert.deepEqual((await readdir(shard)).sort(), ['.tmp-fresh', da]);
  });
});
