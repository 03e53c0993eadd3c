import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Server, ServerCredentials, credentials, type ClientReadableStream, type ServerWritableStream } from '@grpc/grpc-js';
import { BufferPool } from '../../../common/src/bundle/buffer-pool.js';
import { EncodedChunkData } from '../../../common/src/bundle/chunk-codec.js';
import { SendBudget, streamChunks } from '../../../common/src/bundle/chunk-stream.js';
import type { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { FastChunksClient, FastChunksService, frameChunksInPlace } from '../../../common/src/grpc-chunks.js';
import { seededBytes } from './prng.js';

const CHUNK = 1 << 20;
const PER_CALL = 40;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Resolves once `cond` holds (checked on each turn of the event loop); fails with `what` after 20 s. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('common/bundle/chunk-stream: one send budget for every call of a server', function () {
  this.timeout(60_000);
  // 80 distinct 1 MiB chunks, two calls of 40: far more than loopback socket buffers and HTTP/2 windows absorb.
  const chunks = new Map<string, Buffer>();
  for (let i = 0; i < 2 * PER_CALL; i++) {
    const b = seededBytes(CHUNK, 1000 + i);
    chunks.set(sha(b), b);
  }
  const digests = [...chunks.keys()];
  let server: Server;
  let client: InstanceType<typeof FastChunksClient>;
  let budget: SendBudget;
  let reads = 0;
  let ended = 0;
  /** When set, each read waits for it (a slow disk); `cancelled` counts calls the server saw cancelled. */
  let gate: Promise<void> | undefined;
  let cancelled = 0;

  beforeEach(async () => {
    frameChunksInPlace();
    budget = new SendBudget(4 * CHUNK);
    reads = 0;
    ended = 0;
    gate = undefined;
    cancelled = 0;
    const pool = new BufferPool(Number.POSITIVE_INFINITY, 16 * CHUNK);
    server = new Server();
    server.addService(FastChunksService, {
      fetch: (call: ServerWritableStream<{ digests: string[] }, ChunkData>) => {
        call.on('cancelled', () => { cancelled++; });
        const read = async (d: string) => {
          reads++;
          await gate;
          const m = new EncodedChunkData(d, chunks.get(d)!.length, pool.take(CHUNK + 100));
          m.data.set(chunks.get(d)!);
          return m;
        };
        void streamChunks(call as ServerWritableStream<unknown, unknown>, call.request.digests, { read, pool, budget })
          .then(() => call.end(), () => call.end())
          .finally(() => { ended++; });
      },
    } as never);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    client = new FastChunksClient(`127.0.0.1:${port}`, credentials.createInsecure());
  });

  afterEach(async () => {
    client.close();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
  });

  /** A fetch whose reader is paused until `resume()`: the server's writes back up into its queue. */
  function pausedFetch(ds: string[]) {
    const got: ChunkData[] = [];
    const s = client.fetch({ digests: ds }) as ClientReadableStream<ChunkData>;
    s.pause();
    const done = new Promise<void>((res, rej) => {
      s.on('data', (m: ChunkData) => got.push(m));
      s.on('end', () => res());
      s.on('error', rej);
    });
    return { stream: s, got, done, resume: () => s.resume() };
  }

  it('two stalled calls together queue no more than the budget plus one chunk each, then deliver every byte', async () => {
    const a = pausedFetch(digests.slice(0, PER_CALL));
    const b = pausedFetch(digests.slice(PER_CALL));
    // Both calls end up waiting for the budget (each has a chunk queued that no one reads).
    await until(() => budget.waiters === 2, 'both calls to wait for the budget');
    const wire = CHUNK + 100;
    assert.ok(budget.queued <= budget.limit + 2 * wire, `queued ${budget.queued} bytes against a ${budget.limit}-byte budget`);
    assert.ok(reads < 2 * PER_CALL, `the server stopped reading chunks (${reads} read)`);
    a.resume();
    b.resume();
    await Promise.all([a.done, b.done]);
    assert.deepEqual(a.got.map((m) => m.digest), digests.slice(0, PER_CALL));
    assert.deepEqual(b.got.map((m) => m.digest), digests.slice(PER_CALL));
    for (const m of [...a.got, ...b.got]) assert.ok(Buffer.from(m.data).equals(chunks.get(m.digest)!), m.digest);
    await until(() => ended === 2, 'both calls to end');
    assert.equal(budget.queued, 0, 'everything written is returned to the budget');
  });

  it('a call cancelled while its bytes are queued gives them back, and the other call goes on', async () => {
    const a = pausedFetch(digests.slice(0, PER_CALL));
    const b = pausedFetch(digests.slice(PER_CALL));
    a.done.catch(() => undefined);
    await until(() => budget.waiters === 2, 'both calls to wait for the budget');
    a.stream.cancel();
    b.resume();
    await b.done;
    assert.equal(b.got.length, PER_CALL);
    await until(() => ended === 2, 'both calls to end');
    assert.equal(budget.queued, 0, 'the cancelled call\'s queued bytes went back to the budget');
  });

  it('a call cancelled while it reads a chunk counts nothing it can no longer send', async () => {
    let open!: () => void;
    gate = new Promise<void>((r) => { open = r; });
    const a = pausedFetch(digests.slice(0, 2));
    a.done.catch(() => undefined);
    await until(() => reads === 1, 'the server to start reading the first chunk');
    a.stream.cancel();
    await until(() => cancelled === 1, 'the server to see the call cancelled');
    open();
    await until(() => ended === 1, 'the call to end');
    assert.equal(budget.queued, 0, 'the chunk read after the cancel was not counted');
  });
});

