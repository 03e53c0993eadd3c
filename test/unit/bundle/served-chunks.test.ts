import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore } from '../../../common/src/bundle/chunk-store.js';
import { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { CONTROLLER_SERVING, ServedChunks } from '../../../common/src/bundle/served-chunks.js';
import { BufferPool } from '../../../common/src/bundle/buffer-pool.js';
import { seededBytes } from './prng.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Files under `dir` this process holds open (from /proc/self/fd). */
async function openUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir + '/')) out.push(target);
  }
  return out;
}

describe('controller/bundles/served-chunks: reading chunks for Chunks.Fetch', () => {
  let dir: string;
  let store: ChunkStore;
  let served: ServedChunks;
  const bytes = seededBytes(300_000, 42);
  const digest = sha(bytes);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-served-'));
    store = new ChunkStore(dir);
    served = new ServedChunks(store);
    await store.put(digest, bytes);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('reads a chunk into a ready wire message (what the generated decoder reads back)', async () => {
    const m = await served.read(digest);
    const back = ChunkData.decode(m.wire);
    assert.equal(back.digest, digest);
    assert.ok(back.data.equals(bytes));
  });

  it('reuses a message buffer handed back to the pool, never one from node\'s shared Buffer pool', async () => {
    const pool = new BufferPool();
    const first = await served.read(digest, pool);
    pool.give(first.framed);
    const other = seededBytes(200_000, 43);
    await store.put(sha(other), other);
    const second = await served.read(sha(other), pool);
    assert.equal(second.wire.buffer, first.wire.buffer, 'the freed buffer was reused');
    assert.ok(ChunkData.decode(second.wire).data.equals(other));
    const small = Buffer.from('tiny chunk');
    await store.put(sha(small), small);
    const tiny = await served.read(sha(small), pool);
    pool.give(tiny.framed);
    assert.equal(pool.take(1), undefined, 'a slice of the shared pool is not kept');
  });

  it('a chunk corrupt before its first serve: CHUNK_CORRUPT and dropped', async () => {
    const rotted = Buffer.from(bytes);
    rotted[7]! ^= 1;
    await writeFile(store.pathOf(digest), rotted);
    await assert.rejects(served.read(digest), (e: Error & { code?: string }) => e.code === 'CHUNK_CORRUPT');
    assert.equal(await store.has(digest), false);
    await assert.rejects(served.read(digest), (e: Error & { code?: string }) => e.code === 'CHUNK_NOT_FOUND');
  });

  it('a chunk rewritten with another size after a serve is hashed again: CHUNK_CORRUPT', async () => {
    await served.read(digest);
    await writeFile(store.pathOf(digest), Buffer.from('bit rot'));
    await assert.rejects(served.read(digest), (e: Error & { code?: string }) => e.code === 'CHUNK_CORRUPT');
    assert.equal(await store.has(digest), false);
  });

  it('same-size rot after a serve is left to the agent; forget() makes the next serve hash (and drop) it', async () => {
    await served.read(digest);
    const rotted = Buffer.from(await readFile(store.pathOf(digest)));
    rotted[1000]! ^= 0xff;
    await writeFile(store.pathOf(digest), rotted);
    const m = await served.read(digest); // not hashed again: the agent's check catches it
    assert.notEqual(sha(m.data), digest);
    served.forget();
    await assert.rejects(served.read(digest), (e: Error & { code?: string }) => e.code === 'CHUNK_CORRUPT');
    assert.equal(await store.has(digest), false);
  });

  it('a chunk this process stored from bytes it hashed is served without a second hash; forget() still makes it checked', async () => {
    const other = seededBytes(200_000, 44);
    const d = sha(other);
    assert.equal(await store.put(d, other), true);
    served.written(d, other.length);
    const rotted = Buffer.from(other);
    rotted[5]! ^= 1;
    await writeFile(store.pathOf(d), rotted); // same size, after the put
    const m = await served.read(d);
    assert.notEqual(sha(m.data), d, 'served as stored: the agent\'s hash is the check');
    served.forget();
    await assert.rejects(served.read(d), (e: Error & { code?: string }) => e.code === 'CHUNK_CORRUPT');
  });

  it('keeps the files of recently served chunks open (no open or close per serve), at most its limit, and closes them on close()', async () => {
    served = new ServedChunks(store, { ...CONTROLLER_SERVING, openFiles: 64 });
    await served.read(digest);
    await served.read(digest);
    assert.deepEqual(await openUnder(dir), [store.pathOf(digest)], 'one file open for two serves');
    const many: string[] = [];
    for (let k = 0; k < 80; k++) {
      const b = Buffer.from(`chunk ${k}`);
      many.push(sha(b));
      await store.put(sha(b), b);
    }
    // Reads at once, more than the set holds: each gets its bytes, and the set is trimmed once they are done.
    const msgs = await Promise.all(many.map((d) => served.read(d)));
    msgs.forEach((m, k) => assert.equal(m.data.toString(), `chunk ${k}`));
    for (const d of many.slice(0, 10)) await served.read(d);
    const open = await openUnder(dir);
    assert.ok(open.length <= 64, `${open.length} files open`);
    for (const d of many.slice(0, 10)) assert.ok(open.includes(store.pathOf(d)), 'the most recently served stay open');
    served.close();
    assert.deepEqual(await openUnder(dir), []);
    assert.equal((await served.read(many[0]!)).data.toString(), 'chunk 0', 'read again after close()');
    served.forget();
    assert.deepEqual(await openUnder(dir), [], 'forget() closes them too (the next serve sees the file the store has now)');
  });

  it('out of file descriptors (EMFILE), it closes its idle chunk files and opens again: every chunk is served', async () => {
    // A child with a hard limit of 40 descriptors serves 100 chunks sequentially with room for 1024 open files.
    const digests: string[] = [];
    for (let k = 0; k < 100; k++) {
      const b = Buffer.from(`chunk ${k}`);
      digests.push(sha(b));
      await store.put(sha(b), b);
    }
    const mod = new URL('../../../common/src/bundle/', import.meta.url).pathname;
    const script = [
      `import { ChunkStore } from '${mod}chunk-store.js';`,
      `import { ServedChunks } from '${mod}served-chunks.js';`,
      `const served = new ServedChunks(new ChunkStore(${JSON.stringify(dir)}));`,
      `const digests = ${JSON.stringify(digests)};`,
      'let ok = 0;',
      'for (let k = 0; k < digests.length; k++) if ((await served.read(digests[k])).data.toString() === `chunk ${k}`) ok++;',
      'console.log(ok);',
    ].join('\n');
    const r = spawnSync('bash', ['-c', 'ulimit -n 40 && exec "$0" --input-type=module -e "$1"', process.execPath, script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '100');
  });

  it('a chunk found corrupt is closed as well as dropped: nothing of it stays open', async () => {
    const rotted = Buffer.from(bytes);
    rotted[9]! ^= 1;
    await writeFile(store.pathOf(digest), rotted);
    await assert.rejects(served.read(digest), (e: Error & { code?: string }) => e.code === 'CHUNK_CORRUPT');
    await new Promise((r) => setImmediate(r)); // close() is asynchronous on libuv's pool
    assert.deepEqual(await openUnder(dir), []);
  });

  it('a chunk removed from the store is not served from its file held open: CHUNK_NOT_FOUND', async () => {
    await served.read(digest);
    assert.equal(await store.remove(digest), true);
    await assert.rejects(served.read(digest), (e: Error & { code?: string }) => e.code === 'CHUNK_NOT_FOUND');
  });
});
