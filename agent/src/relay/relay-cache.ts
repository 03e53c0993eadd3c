/**
 * A site relay's chunk cache (docs/relays.md): verified chunks on disk,
 * bounded in bytes, least recently used out first; survives restarts (the
 * index is rebuilt from the directory, oldest access time first).
 *
 * Each missing chunk is fetched once from upstream however many agents ask
 * for it at the same time (single flight): the first asker starts one
 * upstream call for every chunk it misses, later askers wait on the same
 * promises (relay-upstream.ts). Upstream bytes are hashed before they are stored
 * (ChunkStore.put), and chunks are served through ServedChunks, which hashes
 * a chunk the first time this process serves it, so a chunk that went bad
 * while the relay was down is dropped and fetched again, not served.
 *
 * Chunks of pinned bundles (an unfinished rollout or prefetch needs them;
 * the controller sends the set) are never evicted, and `warm` fetches a
 * pinned bundle ahead of the hosts. Upstream fetches share one token
 * bucket: the agent's bandwidth cap applies to the relay's upstream link,
 * not to what it serves on the site's network.
 */
import { createHash } from 'node:crypto';
import { readFile, stat, utimes } from 'node:fs/promises';
import { ChunkStore } from '../../../common/src/bundle/chunk-store.js';
import type { EncodedChunkData } from '../../../common/src/bundle/chunk-codec.js';
import { ChunkCorruptError, ChunkNotFoundError } from '../../../common/src/bundle/errors.js';
import { ServedChunks, type ServingLimits } from '../../../common/src/bundle/served-chunks.js';
import type { BufferPool } from '../../../common/src/bundle/buffer-pool.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import type { ChunkSource, FetchedChunk } from '../bundles/chunk-source.js';
import { MAX_DIGESTS_PER_CALL, type SendBudget } from '../../../common/src/bundle/chunk-stream.js';
import { UpstreamFetches } from './relay-upstream.js';

/** A relay runs on an edge host beside other work: a smaller budget and pool than the controller's (a site's agents share one uplink-fed cache). */
const RELAY_SERVING: ServingLimits = { sendBytes: 24 << 20, poolBytes: 32 << 20, openFiles: 256 };

/** Counters a relay reports (RelayStatus). */
export interface RelayCacheStats {
  capacityBytes: number;
  usedBytes: number;
  chunks: number;
  hits: number;
  misses: number;
  bytesFromUpstream: number;
  bytesServed: number;
  droppedCorrupt: number;
  upstreamBytesPerSec: number;
}

/** See module comment. */
export class RelayCache {
  readonly store: ChunkStore;
  private readonly served: ServedChunks;
  /** The chunk buffers and send budget of everything this relay serves. */
  get pool(): BufferPool {
    return this.served.pool;
  }
  get budget(): SendBudget {
    return this.served.budget;
  }
  /** Digest → size, in access order (oldest first): Map iteration order is insertion order, and a hit re-inserts. */
  private readonly lru = new Map<string, number>();
  private used = 0;
  /** Upstream fetches in flight (single flight). */
  private readonly upstream: UpstreamFetches;
  /** Chunks being served right now (count of calls): never evicted under a reader. */
  private readonly pinned = new Map<string, number>();
  private readonly counters = { hits: 0, misses: 0, bytesFromUpstream: 0, bytesServed: 0, droppedCorrupt: 0, upstreamBytesPerSec: 0 };
  /** Pinned bundles (id → its digests) and the union of their digests: never evicted. */
  private pins = new Map<string, readonly string[]>();
  private pinnedDigests = new Set<string>();

  private constructor(dir: string, private capacity: number, upstream: () => ChunkSource & { close(): void }, private readonly log: Logger, upstreamBytesPerSec: number) {
    this.store = new ChunkStore(dir, { durable: false });
    this.served = new ServedChunks(this.store, RELAY_SERVING);
    this.upstream = new UpstreamFetches(upstream, {
      keep: async (digest, data) => {
        await this.store.put(digest, data); // hashes first; a mismatch throws and stores nothing
        this.served.written(digest, data.length);
        this.counters.bytesFromUpstream += data.length;
        this.touch(digest, data.length);
      },
      afterKeep: () => this.evict(),
      rate: (bytesPerSec) => { this.counters.upstreamBytesPerSec = bytesPerSec; },
    }, log, upstreamBytesPerSec);
  }

  /** Upstream fetches in flight, by digest: what `upstream` is fetching now. */
  private get inFlight(): ReadonlyMap<string, Promise<void>> {
    return this.upstream.inFlight;
  }

  /**
   * Opens the cache in `dir`, indexing what an earlier run left (then
   * trimming it to `capacity`). `upstreamBytesPerSec` caps upstream fetches
   * (0: no cap).
   */
  static async open(dir: string, capacity: number, upstream: () => ChunkSource & { close(): void }, log: Logger, upstreamBytesPerSec = 0): Promise<RelayCache> {
    const c = new RelayCache(dir, capacity, upstream, log, upstreamBytesPerSec);
    await c.store.sweepTempFiles(0);
    const found: Array<{ digest: string; size: number; at: number }> = [];
    for await (const digest of c.store.list()) {
      const st = await stat(c.store.pathOf(digest)).catch(() => undefined);
      if (st) found.push({ digest, size: st.size, at: st.atimeMs > st.mtimeMs ? st.atimeMs : st.mtimeMs });
    }
    found.sort((a, b) => a.at - b.at);
    for (const f of found) {
      c.lru.set(f.digest, f.size);
      c.used += f.size;
    }
    await c.evict();
    return c;
  }

  /** A new bound (the operator changed --cache-size); trims at once. */
  async resize(capacity: number): Promise<void> {
    this.capacity = capacity;
    await this.evict();
  }

  /** The controller's pin set (replaces the previous one); chunks no longer pinned may go at the next eviction. */
  setPins(pins: ReadonlyMap<string, readonly string[]>): void {
    this.pins = new Map(pins);
    this.pinnedDigests = new Set([...pins.values()].flat());
    void this.evict();
  }

  /** Ids of the pinned bundles (tests, status). */
  pinnedBundles(): string[] {
    return [...this.pins.keys()];
  }

  /**
   * Fetches every chunk of `digests` the cache lacks (a pinned bundle, ahead
   * of the hosts), a call of at most MAX_DIGESTS_PER_CALL at a time; the
   * single flight still holds against agents asking meanwhile. Resolves with
   * the bytes fetched upstream; rejects with the first chunk that could not
   * be had. Not counted as hits or misses: no agent asked.
   */
  async warm(digests: readonly string[]): Promise<number> {
    const before = this.counters.bytesFromUpstream;
    const unique = [...new Set(digests)];
    for (let i = 0; i < unique.length; i += MAX_DIGESTS_PER_CALL) {
      const batch = unique.slice(i, i + MAX_DIGESTS_PER_CALL);
      const missing = batch.filter((d) => !this.lru.has(d) && !this.inFlight.has(d));
      if (missing.length > 0) this.upstream.fetch(missing);
      await Promise.all(batch.map((d) => this.inFlight.get(d) ?? Promise.resolve()));
    }
    return this.counters.bytesFromUpstream - before;
  }

  stats(): RelayCacheStats {
    return { capacityBytes: this.capacity, usedBytes: this.used, chunks: this.lru.size, ...this.counters };
  }

  /**
   * Makes sure every digest is in the cache or on its way: one upstream call
   * for those nobody is fetching yet. Returns a promise per digest, in order.
   */
  prepare(digests: readonly string[]): Array<Promise<void>> {
    const missing = digests.filter((d) => !this.lru.has(d) && !this.inFlight.has(d));
    const unique = [...new Set(missing)];
    if (unique.length > 0) this.upstream.fetch(unique);
    for (const d of digests) {
      if (this.lru.has(d) && !this.inFlight.has(d)) this.counters.hits++;
      else this.counters.misses++;
    }
    return digests.map((d) => this.inFlight.get(d) ?? Promise.resolve());
  }

  /**
   * The chunk as a message to send, once it is here. A copy that turns out
   * corrupt (ServedChunks drops it) or vanished is fetched again once.
   */
  async read(digest: string, ready: Promise<void>): Promise<EncodedChunkData> {
    await ready;
    this.pinned.set(digest, (this.pinned.get(digest) ?? 0) + 1);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const msg = await this.served.read(digest, this.pool);
          this.touch(digest, msg.data.length);
          this.counters.bytesServed += msg.data.length;
          return msg;
        } catch (e) {
          if (!(e instanceof ChunkCorruptError || e instanceof ChunkNotFoundError) || attempt > 0) throw e;
          if (e instanceof ChunkCorruptError) {
            this.counters.droppedCorrupt++;
            this.log.warn({ digest }, 'a cached chunk no longer matches its digest; dropped and fetched again');
          }
          this.forgetEntry(digest);
          await (this.inFlight.get(digest) ?? this.upstream.fetchOne(digest));
        }
      }
    } finally {
      const n = (this.pinned.get(digest) ?? 1) - 1;
      if (n <= 0) this.pinned.delete(digest);
      else this.pinned.set(digest, n);
    }
  }

  /**
   * {@link read}, with the bytes hashed before they are handed out: for the
   * relay's registry and files endpoints (relay-registry.ts), whose clients
   * may verify nothing (curl), so the relay is the last place bad bytes can
   * be stopped. ServedChunks hashes only a chunk's first serve; rot of the
   * same size after that would otherwise reach the client. A bad copy is
   * dropped (counted in droppedCorrupt) and fetched again from upstream once.
   */
  async readVerified(digest: string, ready: Promise<void>): Promise<EncodedChunkData> {
    for (let attempt = 0; ; attempt++) {
      const msg = await this.read(digest, ready);
      const actual = createHash('sha256').update(msg.data).digest('hex');
      if (actual === digest) return msg;
      this.pool.give(msg.framed);
      // Hashes the stored copy again and drops it: the next read finds it missing and fetches it from upstream.
      await this.recheck(digest);
      if (attempt > 0) throw new ChunkCorruptError(digest, actual);
      ready = Promise.resolve();
    }
  }

  /**
   * The relay host's own stages read through its cache (agent-work.ts), so
   * the bundle crosses the site's uplink once for the relay and its site
   * together instead of once more for the relay host itself. Same single
   * flight as the served path; the bytes are yielded unhashed because the
   * fallback source hashes every relay chunk it takes.
   */
  localSource(): ChunkSource {
    return { fetch: (digests, signal) => this.fetchLocal(digests, signal) };
  }

  private async *fetchLocal(digests: string[], signal: AbortSignal): AsyncGenerator<FetchedChunk> {
    const ready = this.prepare(digests);
    for (const [i, digest] of digests.entries()) {
      if (signal.aborted) throw new FerryError(ErrorCode.Cancelled, 'chunk fetch was cancelled');
      await ready[i];
      this.pinned.set(digest, (this.pinned.get(digest) ?? 0) + 1);
      let data: Buffer;
      try {
        data = await readFile(this.store.pathOf(digest));
      } catch (e) {
        throw new FerryError(ErrorCode.ChunkNotFound, `the local relay cache lost chunk ${digest.slice(0, 12)}: ${(e as Error).message}`);
      } finally {
        const n = (this.pinned.get(digest) ?? 1) - 1;
        if (n <= 0) this.pinned.delete(digest);
        else this.pinned.set(digest, n);
      }
      this.touch(digest, data.length);
      this.counters.bytesServed += data.length;
      yield { digest, data };
    }
  }

  /** Chunks.Recheck: hash the cached copy again; drop it if bad. */
  async recheck(digest: string): Promise<boolean> {
    if (!this.lru.has(digest)) return false;
    const bad = await this.served.recheck(digest);
    if (bad) {
      this.counters.droppedCorrupt++;
      this.forgetEntry(digest);
      this.log.warn({ digest }, 'an agent reported bad bytes for a cached chunk; it was bad and is dropped');
    }
    return bad;
  }

  /** Marks a chunk used now; the access time on disk keeps the order across restarts (best effort). */
  private touch(digest: string, size: number): void {
    const had = this.lru.get(digest);
    if (had !== undefined) {
      this.lru.delete(digest);
      this.used -= had;
    }
    this.lru.set(digest, size);
    this.used += size;
    const now = new Date();
    void utimes(this.store.pathOf(digest), now, now).catch(() => undefined);
  }

  private forgetEntry(digest: string): void {
    const had = this.lru.get(digest);
    if (had !== undefined) {
      this.lru.delete(digest);
      this.used -= had;
    }
  }

  /** Least recently used first, skipping chunks being served or fetched and chunks of pinned bundles, until under the bound. */
  private async evict(): Promise<void> {
    if (this.used <= this.capacity) return;
    for (const [digest, size] of this.lru) {
      if (this.used <= this.capacity) break;
      if (this.pinned.has(digest) || this.inFlight.has(digest) || this.pinnedDigests.has(digest)) continue;
      this.lru.delete(digest);
      this.used -= size;
      await this.store.remove(digest).catch((e: Error) => this.log.warn({ digest, err: e.message }, 'relay: could not evict a chunk'));
    }
  }
}
