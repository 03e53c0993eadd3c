/**
 * A site relay's upstream fetches (docs/relays.md), apart from the cache
 * that stores what they bring (relay-cache.ts): each missing chunk is asked
 * for once however many agents want it at the same time (single flight),
 * one upstream call per set of misses, each chunk a promise that every
 * asker waits on. All calls share one token bucket, so the agent's
 * bandwidth cap applies to the relay's upstream link. Kept apart because the
 * in-flight bookkeeping and the failure mapping are one job, and the cache's
 * index and eviction another.
 */
import { FerryError, ErrorCode, asFerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import type { ChunkSource } from '../bundles/chunk-source.js';
import { TokenBucket } from '../bundles/token-bucket.js';

/** What the cache does with the chunks an upstream call brings. */
export interface UpstreamSink {
  /** Stores one chunk that arrived (hashing it first: a mismatch throws and stores nothing). */
  keep(digest: string, data: Buffer): Promise<void>;
  /** Runs after each chunk kept and its waiters released (the cache trims itself to its bound). */
  afterKeep(): Promise<void>;
  /** The byte rate of an upstream call that brought anything. */
  rate(bytesPerSec: number): void;
}

/** See module comment. */
export class UpstreamFetches {
  /** Upstream fetches in flight, by digest (single flight). */
  readonly inFlight = new Map<string, Promise<void>>();
  private readonly bucket: TokenBucket;

  constructor(private readonly upstream: () => ChunkSource & { close(): void }, private readonly sink: UpstreamSink, private readonly log: Logger, upstreamBytesPerSec: number) {
    this.bucket = new TokenBucket(upstreamBytesPerSec);
  }

  /** One upstream call for just `digest`; its promise. */
  fetchOne(digest: string): Promise<void> {
    this.fetch([digest]);
    return this.inFlight.get(digest)!;
  }

  /** One upstream call for `digests`; each digest's promise settles as its chunk is stored (or the call fails). */
  fetch(digests: string[]): void {
    const waiting = new Map<string, { resolve: () => void; reject: (e: unknown) => void }>();
    for (const d of digests) {
      const p = new Promise<void>((resolve, reject) => waiting.set(d, { resolve, reject }));
      p.catch(() => undefined); // a waiter sees the rejection; nobody waiting is not an error
      this.inFlight.set(d, p);
    }
    const source = this.upstream();
    const started = performance.now();
    let got = 0;
    void (async () => {
      const ac = new AbortController();
      try {
        for await (const c of source.fetch(digests, ac.signal)) {
          const w = waiting.get(c.digest);
          if (!w) throw new FerryError(ErrorCode.ChunkDigestMismatch, `upstream sent chunk ${c.digest.slice(0, 80)}, which was not asked for`);
          await this.bucket.take(c.data.length, ac.signal);
          await this.sink.keep(c.digest, c.data);
          got += c.data.length;
          this.inFlight.delete(c.digest);
          waiting.delete(c.digest);
          w.resolve();
          await this.sink.afterKeep();
        }
        if (waiting.size > 0) throw new FerryError(ErrorCode.Unavailable, `upstream ended after ${digests.length - waiting.size} of ${digests.length} chunks`);
      } catch (e) {
        const fe = asFerryError(e);
        this.log.warn({ code: fe.code, err: fe.message, chunks: waiting.size }, 'relay: upstream fetch failed');
        for (const [d, w] of waiting) {
          this.inFlight.delete(d);
          w.reject(new FerryError(fe.code === ErrorCode.NotFound || fe.code === ErrorCode.ChunkNotFound ? fe.code : ErrorCode.Unavailable,
            `the relay could not get chunk ${d.slice(0, 12)} from upstream: ${fe.message}`, 'the agent falls back to the controller by itself'));
        }
      } finally {
        ac.abort();
        source.close();
        const secs = (performance.now() - started) / 1000;
        if (got > 0 && secs > 0) this.sink.rate(Math.round(got / secs));
      }
    })();
  }
}
