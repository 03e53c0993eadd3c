import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore } from '../../../common/src/bundle/chunk-store.js';
import { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { ServedChunks } from '../../../controller/src/bundles/served-chunks.js';
import { seededBytes } from './prng.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

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
});
