import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { silentLogger } from '../../../common/src/log.js';
import type { ChunkSource, FetchedChunk } from '../../../agent/src/bundles/chunk-source.js';
import { FallbackChunkSource, RelayHealth, type RelayLink } from '../../../agent/src/relay/fallback-source.js';
import { RelayCache } from '../../../agent/src/relay/relay-cache.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Chunks by digest, and a source over them that counts what it was asked for. */
function chunks(n: number, size = 1000): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const b = randomBytes(size);
    m.set(sha(b), b);
  }
  return m;
}

interface Behaviour {
  /** Deliver this many chunks, then … */
  deliver?: number;
  then?: 'fail' | 'stall' | 'end';
  /** Send garbage for the chunk at this index. */
  corruptAt?: number;
}

class MemSource implements ChunkSource {
  asked: string[][] = [];
  constructor(private readonly data: Map<string, Buffer>, private readonly b: Behaviour = {}) {}
  async *fetch(digests: string[], signal: AbortSignal): AsyncGenerator<FetchedChunk> {
    this.asked.push([...digests]);
    let i = 0;
    for (const d of digests) {
      if (this.b.deliver !== undefined && i >= this.b.deliver) {
        if (this.b.then === 'fail') throw new FerryError(ErrorCode.Unavailable, 'connection dropped');
        if (this.b.then === 'stall') {
          await new Promise<void>((_r, reject) => signal.addEventListener('abort', () => reject(new FerryError(ErrorCode.Cancelled, 'cancelled')), { once: true }));
        }
        return;
      }
      const data = i === this.b.corruptAt ? Buffer.alloc(this.data.get(d)!.length, 1) : this.data.get(d)!;
      i++;
      yield { digest: d, data };
    }
  }
  close(): void {}
}

function link(id: string, source: MemSource, rechecked: string[] = []): RelayLink {
  return { agentId: id, address: `${id}:7444`, source, recheck: async (d) => { rechecked.push(...d); } };
}

async function collect(src: ChunkSource, digests: string[]): Promise<FetchedChunk[]> {
  const out: FetchedChunk[] = [];
  for await (const c of src.fetch(digests, new AbortController().signal)) out.push(c);
  return out;
}

describe('agent/relay/fallback-source: relays first, the controller last, nothing verified fetched twice', () => {
  const data = chunks(6);
  const digests = [...data.keys()];

  it('a relay that fails half way: the rest come from the next relay, then the controller; each chunk once', async () => {
    const r1 = new MemSource(data, { deliver: 2, then: 'fail' });
    const r2 = new MemSource(data, { deliver: 2, then: 'end' });
    const ctl = new MemSource(data);
    const health = new RelayHealth(30_000);
    const got = await collect(new FallbackChunkSource({ relays: [link('r1', r1), link('r2', r2)], controller: ctl, health, log: silentLogger() }), digests);
    assert.deepEqual(got.map((c) => c.digest), digests);
    assert.deepEqual(ctl.asked, [digests.slice(4)]);
    assert.deepEqual(r2.asked, [digests.slice(2)]);
    assert.ok(got.slice(0, 4).every((c) => c.verified === true) && got.slice(4).every((c) => c.verified !== true), 'relay chunks are hashed here; the controller\'s by the fetcher');
    assert.deepEqual(health.fallbacks.map((f) => f.relay), ['r1', 'r2']);
    assert.match(health.fallbacks[0]!.reason, /UNAVAILABLE/);
    // Both are skipped for a while: the next batch goes straight to the controller.
    await collect(new FallbackChunkSource({ relays: [link('r1', r1), link('r2', r2)], controller: ctl, health, log: silentLogger() }), digests.slice(0, 1));
    assert.equal(r1.asked.length, 1);
    assert.deepEqual(ctl.asked.at(-1), digests.slice(0, 1));
  });

  it('a relay that stalls is left after the stall timeout', async () => {
    const r1 = new MemSource(data, { deliver: 1, then: 'stall' });
    const ctl = new MemSource(data);
    const health = new RelayHealth();
    const got = await collect(new FallbackChunkSource({ relays: [link('r1', r1)], controller: ctl, health, log: silentLogger(), stallMs: 100 }), digests);
    assert.deepEqual(got.map((c) => c.digest), digests);
    assert.deepEqual(ctl.asked, [digests.slice(1)]);
    assert.match(health.fallbacks[0]!.reason, /stalled/);
  });

  it('bad bytes from a relay are refused, reported to it, and fetched from the controller', async () => {
    const rechecked: string[] = [];
    const r1 = new MemSource(data, { corruptAt: 3 });
    const ctl = new MemSource(data);
    const health = new RelayHealth();
    const got = await collect(new FallbackChunkSource({ relays: [link('r1', r1, rechecked)], controller: ctl, health, log: silentLogger() }), digests);
    for (const c of got) assert.equal(sha(c.data), c.digest);
    assert.deepEqual(got.map((c) => c.digest), digests);
    assert.deepEqual(ctl.asked, [digests.slice(3)]);
    assert.deepEqual(rechecked, [digests[3]]);
    assert.match(health.fallbacks[0]!.reason, /CHUNK_DIGEST_MISMATCH/);
  });
});

describe('agent/relay/relay-cache: bounded, least recently used out, one upstream fetch per chunk', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ferry-relay-cache-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const read = async (cache: RelayCache, ds: string[]) => {
    const ready = cache.prepare(ds);
    return Promise.all(ds.map((d, i) => cache.read(d, ready[i]!)));
  };

  it('many readers of the same missing chunks cause one upstream fetch of each', async () => {
    const data = chunks(5);
    const ds = [...data.keys()];
    const up = new MemSource(data);
    const cache = await RelayCache.open(dir, 1 << 20, () => up, silentLogger());
    const msgs = await Promise.all([read(cache, ds), read(cache, ds), read(cache, ds.slice(2))]);
    for (const m of msgs.flat()) assert.equal(sha(Buffer.from(m.data)), m.digest);
    assert.deepEqual(up.asked, [ds], 'one upstream call, for every chunk once');
    assert.equal(cache.stats().bytesFromUpstream, 5 * 1000);
    await read(cache, ds);
    assert.equal(up.asked.length, 1, 'then everything is a hit');
    assert.ok(cache.stats().hits >= 5);
  });

  it('evicts least recently used chunks past the bound, and survives a reopen', async () => {
    const data = chunks(5, 1000);
    const ds = [...data.keys()];
    const cache = await RelayCache.open(dir, 3000, () => new MemSource(data), silentLogger());
    await read(cache, ds.slice(0, 3));
    await read(cache, ds.slice(0, 1)); // 0 is now the most recent
    await read(cache, ds.slice(3, 4));
    const held = (c: RelayCache) => ds.filter((d) => existsSync(c.store.pathOf(d)));
    assert.deepEqual(held(cache), [ds[0], ds[2], ds[3]], 'chunk 1 was the least recently used');
    assert.equal(cache.stats().usedBytes, 3000);
    const again = await RelayCache.open(dir, 2000, () => new MemSource(data), silentLogger());
    assert.equal(again.stats().chunks, 2, 'reopened with a smaller bound: trimmed');
    assert.equal(again.stats().usedBytes, 2000);
  });

  it('a chunk corrupt on disk is dropped on its first serve by a new process and fetched again; recheck drops a bad copy only', async () => {
    const data = chunks(2);
    const ds = [...data.keys()];
    const up = new MemSource(data);
    const first = await RelayCache.open(dir, 1 << 20, () => up, silentLogger());
    await read(first, ds);
    writeFileSync(first.store.pathOf(ds[0]!), Buffer.alloc(1000, 7));
    const second = await RelayCache.open(dir, 1 << 20, () => up, silentLogger());
    const [m] = await read(second, ds.slice(0, 1));
    assert.equal(sha(Buffer.from(m!.data)), ds[0]);
    assert.equal(second.stats().droppedCorrupt, 1);
    assert.deepEqual(up.asked.at(-1), [ds[0]]);
    assert.equal(await second.recheck(ds[1]!), false, 'a good copy stays');
    assert.ok(existsSync(second.store.pathOf(ds[1]!)));
    writeFileSync(second.store.pathOf(ds[1]!), Buffer.alloc(1000, 9));
    assert.equal(await second.recheck(ds[1]!), true);
    assert.ok(!existsSync(second.store.pathOf(ds[1]!)));
  });
});

describe('agent/relay/relay-cache: pinned bundles, warm-ups, the upstream cap, the relay host\'s own stages', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ferry-relay-pins-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const read = async (cache: RelayCache, ds: string[]) => {
    const ready = cache.prepare(ds);
    return Promise.all(ds.map((d, i) => cache.read(d, ready[i]!)));
  };
  const held = (c: RelayCache, ds: string[]) => ds.filter((d) => existsSync(c.store.pathOf(d)));

  it('a small cache under pressure: the pinned bundle survives, unpinned chunks go; unpinned, it goes too', async () => {
    const data = chunks(8, 1000);
    const ds = [...data.keys()];
    const pinned = ds.slice(0, 3);
    const cache = await RelayCache.open(dir, 4000, () => new MemSource(data), silentLogger());
    cache.setPins(new Map([['b-pinned', pinned]]));
    await read(cache, pinned); // the oldest chunks: first in line without the pin
    for (const d of ds.slice(3)) await read(cache, [d]); // five more chunks through a 4-chunk cache
    assert.deepEqual(held(cache, pinned), pinned, 'every chunk of the pinned bundle is still there');
    assert.deepEqual(held(cache, ds.slice(3)), [ds[7]], 'unpinned chunks were evicted, least recently used first');
    assert.equal(cache.stats().usedBytes, 4000);
    assert.deepEqual(cache.pinnedBundles(), ['b-pinned']);
    cache.setPins(new Map());
    await read(cache, ds.slice(3, 4));
    assert.deepEqual(held(cache, pinned), pinned.slice(1), 'no longer pinned: its oldest chunk is the first to go under the next pressure');
    assert.equal(cache.stats().usedBytes, 4000);
  });

  it('warm fetches each missing chunk once, in calls of at most 256, and counts no hit or miss', async () => {
    const data = chunks(300, 100);
    const ds = [...data.keys()];
    const up = new MemSource(data);
    const cache = await RelayCache.open(dir, 1 << 20, () => up, silentLogger());
    await read(cache, ds.slice(0, 10));
    const before = cache.stats();
    const bytes = await cache.warm([...ds, ...ds.slice(0, 5)]);
    assert.equal(bytes, 290 * 100, 'only what was missing came from upstream');
    assert.deepEqual(up.asked.slice(1).map((a) => a.length), [246, 44], 'per call of 256 digests, the missing ones');
    assert.equal(cache.stats().hits + cache.stats().misses, before.hits + before.misses);
    await read(cache, ds);
    assert.equal(up.asked.length, 3, 'then every request is a hit');
    assert.equal(cache.stats().hits - before.hits, 300);
  });

  it('a warm-up whose upstream fails rejects, naming the chunk', async () => {
    const data = chunks(3, 100);
    const cache = await RelayCache.open(dir, 1 << 20, () => new MemSource(data, { deliver: 1, then: 'fail' }), silentLogger());
    await assert.rejects(cache.warm([...data.keys()]), /could not get chunk .* from upstream: connection dropped/);
    assert.equal(cache.stats().chunks, 1, 'the chunk that arrived is kept');
  });

  it('the agent\'s bandwidth cap holds the relay\'s upstream fetches', async () => {
    const data = chunks(4, 100_000);
    const cache = await RelayCache.open(dir, 1 << 20, () => new MemSource(data), silentLogger(), 1_000_000);
    const t0 = performance.now();
    await cache.warm([...data.keys()]);
    // 400 kB at 1 MB/s from an empty bucket: at least 0.4 s less the first chunk's 0.1 s debt allowance.
    assert.ok(performance.now() - t0 >= 300, `took ${performance.now() - t0} ms`);
  });

  it('the relay host stages through its own cache: the same single flight, counted as served', async () => {
    const data = chunks(4, 1000);
    const ds = [...data.keys()];
    const up = new MemSource(data);
    const cache = await RelayCache.open(dir, 1 << 20, () => up, silentLogger());
    const [local] = await Promise.all([collect(cache.localSource(), ds), read(cache, ds)]);
    assert.deepEqual(local.map((c) => c.digest), ds);
    for (const c of local) assert.equal(sha(c.data), c.digest);
    assert.deepEqual(up.asked, [ds], 'one upstream fetch for the host itself and an agent asking at once');
    assert.equal(cache.stats().bytesServed, 2 * 4000);
  });
});
