/**
 * Sub-chunk delta fetch, zsync/casync-style (docs/delta-fetch.md): for chunks
 * the host must fetch while it holds an older version of their files (the
 * running binary for an agent upgrade, files of earlier versions of the same
 * bundle), ask the source for each chunk's sketch (its ~4 KiB sub-chunks,
 * common/src/bundle/sketch.ts), copy the sub-chunks the seeds hold, fetch
 * only the missing byte ranges, and check the assembled chunk against its
 * full sha256. Bundle chunks stay ~1 MiB, so manifests stay small; only the
 * chunks that changed are looked at finer.
 *
 * Never worse than whole chunks, and never trusted: a chunk whose sketch
 * does not fit its manifest entry, that matches nothing, or that assembles
 * to the wrong digest (a lying sketch, a 64-bit hash collision, a seed that
 * changed under us) is handed back to be fetched whole the normal way. A
 * source without the RPCs costs one round trip, then everything is whole.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { asFerryError } from '../../../common/src/errors.js';
import { FastCdcChunker, type Chunk } from '../../../common/src/bundle/fastcdc.js';
import { MAX_SKETCH_DIGESTS, SKETCH_CHUNKER, SKETCH_HASH_BYTES, SKETCH_VERSION, sha256Hex, subChunkKey } from '../../../common/src/bundle/sketch.js';
import type { Logger } from '../../../common/src/log.js';
import type { ByteRange, ChunkSource, SketchReply } from './chunk-source.js';
import type { WantedChunk } from './chunk-fetcher.js';
import type { TokenBucket } from './token-bucket.js';

/**
 * Seed bytes indexed per stage at most. Indexing costs a read, a gear scan
 * and a sha256 of every byte (~0.3 s for 86 MiB); past this the rest of the
 * seeds are left out (their chunks are still reused whole).
 */
export const SEED_MAX_BYTES = 1024 * 1024 * 1024;
/** Chunks assembled at once: each holds its chunk (≤ 4 MiB) and one range call; a few hide the round trips. */
const DELTA_CONCURRENCY = 4;

/** A byte range of a file on this host likely to share sub-chunks with the chunks to fetch. */
export interface SeedRegion {
  path: string;
  offset: number;
  length: number;
}

/**
 * The regions of a seed file (its chunks, in order) made of chunks the new
 * bundle does not list, adjacent ones merged. Those are where a changed
 * chunk's older bytes are: content the new version kept sits in chunks it
 * reuses whole, so indexing only these regions finds the same sub-chunks
 * for a fraction of the work (4 MiB of an 86 MiB binary in the upgrade
 * benchmark, instead of a pass over all of it).
 */
export function unmatchedRegions(path: string, chunks: ReadonlyArray<{ digest: string; size: number }>, bundle: ReadonlyMap<string, number>): SeedRegion[] {
  const out: SeedRegion[] = [];
  let offset = 0;
  for (const c of chunks) {
    if (!bundle.has(c.digest)) {
      const last = out[out.length - 1];
      if (last && last.offset + last.length === offset) last.length += c.size;
      else out.push({ path, offset, length: c.size });
    }
    offset += c.size;
  }
  return out;
}

/** Options of {@link deltaFetch}. */
export interface DeltaFetchOptions {
  source: ChunkSource;
  /** Regions of files on this host likely to share sub-chunks with the wanted chunks ({@link unmatchedRegions}). */
  seeds: readonly SeedRegion[];
  bucket: TokenBucket;
  signal: AbortSignal;
  log: Logger;
  /** Takes a chunk whose bytes matched its digest; `data` may be kept. */
  deliver: (digest: string, data: Buffer) => Promise<void>;
  /** Bytes taken off the link (sketch and range replies), as they arrive. */
  onFetched: (wireBytes: number) => void;
}

/** What {@link deltaFetch} did. */
export interface DeltaOutcome<C extends WantedChunk = WantedChunk> {
  /** Chunks still to fetch whole (no sketch support, nothing to copy, a failed check, an error). */
  rest: C[];
  /** Chunks assembled from seed sub-chunks and ranges. */
  assembled: number;
  /** Bytes of those chunks copied from seeds instead of fetched. */
  copiedBytes: number;
}

/** See module comment. Rejects only when `signal` aborts; every other failure leaves chunks in `rest`. */
export async function deltaFetch<C extends WantedChunk>(wanted: C[], o: DeltaFetchOptions): Promise<DeltaOutcome<C>> {
  const out: DeltaOutcome<C> = { rest: [], assembled: 0, copiedBytes: 0 };
  const { source } = o;
  if (wanted.length === 0 || o.seeds.length === 0 || !source.sketch || !source.fetchRanges) return { ...out, rest: wanted };
  let seeds: SeedIndex | undefined;
  try {
    for (let i = 0; i < wanted.length; i += MAX_SKETCH_DIGESTS) {
      const batch = wanted.slice(i, i + MAX_SKETCH_DIGESTS);
      let reply: SketchReply | undefined;
      try {
        reply = await source.sketch(batch.map((c) => c.digest), o.signal);
      } catch (e) {
        if (o.signal.aborted) throw e;
        o.log.warn({ err: asFerryError(e).message }, 'chunk sketches failed; fetching the rest as whole chunks');
        out.rest.push(...wanted.slice(i));
        return out;
      }
      if (reply === undefined || reply.version !== SKETCH_VERSION) {
        // An older controller or a relay: whole chunks, as before.
        if (reply !== undefined) o.log.info({ version: reply.version, ours: SKETCH_VERSION }, 'the chunk source sketches with other parameters; fetching whole chunks');
        out.rest.push(...wanted.slice(i));
        return out;
      }
      o.onFetched(reply.wireBytes);
      await o.bucket.take(reply.wireBytes, o.signal);
      seeds ??= await SeedIndex.build(o.seeds, o.log);
      const byDigest = new Map(reply.sketches.map((s) => [s.digest, s]));
      let next = 0;
      let failed = false; // a fatal error (abort, a write that failed) stops the other workers taking chunks
      const worker = async () => {
        for (let c = batch[next++]; c && !failed; c = batch[next++]) {
          try {
            const copied = await assemble(c, byDigest.get(c.digest), seeds!, o);
            if (copied === undefined) out.rest.push(c);
            else {
              out.assembled++;
              out.copiedBytes += copied;
            }
          } catch (e) {
            failed = true;
            throw e;
          }
        }
      };
      // Settled, not all: no worker may still write into the part files once the stage has moved on.
      const ends = await Promise.allSettled(Array.from({ length: Math.min(DELTA_CONCURRENCY, batch.length) }, worker));
      const bad = ends.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (bad) throw bad.reason;
    }
    return out;
  } finally {
    await seeds?.close();
  }
}

/** One chunk from seed sub-chunks and fetched ranges; returns the bytes copied, or undefined to fetch it whole. */
async function assemble(c: WantedChunk, sk: SketchReply['sketches'][number] | undefined, seeds: SeedIndex, o: DeltaFetchOptions): Promise<number | undefined> {
  if (!sk || sk.hashes.length !== sk.lengths.length * SKETCH_HASH_BYTES || sk.lengths.reduce((a, b) => a + b, 0) !== c.size) {
    o.log.warn({ digest: c.digest }, 'the chunk sketch does not fit the manifest; fetching the whole chunk');
    return undefined;
  }
  // Plan: a copy per sub-chunk a seed holds, coalesced ranges for the rest.
  const copies: Array<{ at: number; length: number; from: SeedPlace }> = [];
  const ranges: ByteRange[] = [];
  let at = 0;
  sk.lengths.forEach((length, i) => {
    const from = seeds.find(subChunkKey(length, sk.hashes.subarray(i * SKETCH_HASH_BYTES, (i + 1) * SKETCH_HASH_BYTES)));
    const last = ranges[ranges.length - 1];
    if (from) copies.push({ at, length, from });
    else if (last && last.offset + last.length === at) last.length += length;
    else ranges.push({ offset: at, length });
    at += length;
  });
  if (copies.length === 0) return undefined; // nothing to gain: one whole-chunk fetch is cheaper than ranges
  const buf = Buffer.allocUnsafe(c.size);
  try {
    for (const cp of copies) if (!(await seeds.read(cp.from, buf, cp.at, cp.length))) return undefined;
    if (ranges.length > 0) {
      const got = await o.source.fetchRanges!(c.digest, ranges, o.signal);
      o.onFetched(got.wireBytes);
      await o.bucket.take(got.wireBytes, o.signal);
      let off = 0;
      for (const r of ranges) off += got.data.copy(buf, r.offset, off, off + r.length);
      if (off !== got.data.length || off !== c.size - sum(copies.map((x) => x.length))) {
        o.log.warn({ digest: c.digest, got: got.data.length, asked: off }, 'the chunk source sent ranges of the wrong size; fetching the whole chunk');
        return undefined;
      }
    }
  } catch (e) {
    if (o.signal.aborted) throw e;
    o.log.warn({ digest: c.digest, err: asFerryError(e).message }, 'fetching ranges of a chunk failed; fetching the whole chunk');
    return undefined;
  }
  const actual = sha256Hex(buf);
  if (actual !== c.digest) {
    // The sub-digests were only hints; the whole chunk is the contract.
    o.log.warn({ digest: c.digest, actual, copied: copies.length, ranges: ranges.length }, 'a chunk assembled from sub-chunks did not match its digest; fetching the whole chunk');
    return undefined;
  }
  await o.deliver(c.digest, buf);
  return sum(copies.map((x) => x.length));
}

/** Where a sub-chunk's bytes are in a seed file. */
interface SeedPlace {
  path: string;
  offset: number;
}

/** Sub-chunks of the seed files by {@link subChunkKey}; built once per stage, file handles kept open until {@link close}. */
class SeedIndex {
  private readonly files = new Map<string, Promise<FileHandle>>();

  private constructor(private readonly where: Map<string, SeedPlace>) {}

  static async build(regions: readonly SeedRegion[], log: Logger): Promise<SeedIndex> {
    const where = new Map<string, SeedPlace>();
    let bytes = 0;
    const t0 = performance.now();
    for (const r of regions) {
      if (bytes + r.length > SEED_MAX_BYTES) {
        log.info({ path: r.path, length: r.length, indexedBytes: bytes }, 'a seed region beyond the index limit is not used for sub-chunk reuse');
        continue;
      }
      try {
        // The region starts at a bundle-chunk cut, as the sketched chunks do, so sub-chunk cuts line up from its first byte.
        const chunker = new FastCdcChunker(SKETCH_CHUNKER);
        const add = (cs: Chunk[]) => {
          for (const c of cs) {
            const key = subChunkKey(c.length, c.digest);
            if (!where.has(key)) where.set(key, { path: r.path, offset: r.offset + c.offset });
          }
        };
        for await (const buf of createReadStream(r.path, { start: r.offset, end: r.offset + r.length - 1, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) add(chunker.push(buf));
        add(chunker.finish());
        bytes += r.length;
      } catch (err) {
        log.warn({ path: r.path, err: (err as Error).message }, 'cannot read a seed file for sub-chunk reuse; skipping it');
      }
    }
    log.info({ regions: regions.length, bytes, subChunks: where.size, ms: Math.round(performance.now() - t0) }, 'indexed seed regions for sub-chunk delta fetch');
    return new SeedIndex(where);
  }

  find(key: string): SeedPlace | undefined {
    return this.where.get(key);
  }

  /** Reads `length` bytes at `place` into `buf` at `at`; false when the file is shorter now (the chunk check would fail anyway). */
  async read(place: SeedPlace, buf: Buffer, at: number, length: number): Promise<boolean> {
    let fh = this.files.get(place.path);
    if (!fh) this.files.set(place.path, (fh = open(place.path, 'r')));
    const h = await fh;
    for (let got = 0; got < length;) {
      const { bytesRead } = await h.read(buf, at + got, length - got, place.offset + got);
      if (bytesRead === 0) return false;
      got += bytesRead;
    }
    return true;
  }

  async close(): Promise<void> {
    for (const fh of this.files.values()) await fh.then((h) => h.close(), () => undefined);
    this.files.clear();
  }
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
