/**
 * One stage of a signed bundle into the agent's bundle cache
 * (bundle-cache.ts): plan, copy, fetch, assemble, complete. The cache
 * verifies the manifest and runs stages of one bundle one after the other;
 * this is what a stage does, apart from the cache because it is the long
 * procedure of its own that the order below describes.
 *
 * Staging order, and why:
 * 1. verify the signature, then the paths and modes: a foreign or hostile
 *    manifest must not cause a single byte to be written;
 * 2. plan from the stage journal: every chunk is either already written in
 *    this bundle's part files (an earlier, interrupted stage), inside the
 *    files of another complete bundle (an upgrade), or missing; only missing
 *    ones cross the link;
 * 3. check free space for the bytes still to write;
 * 4. copy local chunks and fetch the missing ones (those whose files have an
 *    older version here by sub-chunk delta fetch first, delta-fetch.ts), each verified and written
 *    straight into the part files at its offsets (part-files.ts); each file
 *    is checked against its sha256, fsynced and renamed as soon as it is
 *    complete;
 * 5. write manifest.json, then remove the part files' directory.
 */
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { chunkFile } from '../../../common/src/bundle/fastcdc.js';
import type { BundleManifest, SignedManifest } from '../../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import { fsyncDir, writeFileAtomicAsync } from '../../../common/src/secure-fs.js';
import type { BundleLayout } from './bundle-layout.js';
import type { ChunkSource } from './chunk-source.js';
import { fetchChunks } from './chunk-fetcher.js';
import { deltaFetch, unmatchedRegions, type SeedRegion } from './delta-fetch.js';
import { ensureFreeSpace, formatBytes, type StatfsFn } from './disk-space.js';
import { mkdirExact } from './file-assembler.js';
import { LocalChunkIndex } from './local-chunks.js';
import { PartFiles } from './part-files.js';
import { ProgressThrottle, type StageProgress } from './progress.js';
import { StageJournal } from './stage-journal.js';
import { TokenBucket } from './token-bucket.js';

/**
 * Chunks.Fetch calls in flight by default. One long call (a file's chunks)
 * already keeps the link busy; each call may hold grpc-js's 16 buffered
 * messages plus a flow-control window of chunks in the agent's memory, and
 * two calls were measured no faster than one while holding ~20 MiB more at
 * peak (bench-results/bundles.md).
 */
export const FETCH_CALLS = 1;

/** Options of `BundleCache.stage` (bundle-cache.ts). */
export interface StageOptions {
  /** Operator public keys (PEM) pinned at enrollment; the manifest must verify against one. */
  trustedKeys: readonly string[];
  /** Where missing chunks come from (the controller, via GrpcChunkSource). */
  source: ChunkSource;
  /** Fetch calls in flight (default FETCH_CALLS; each asks for up to 256 chunks of one file). */
  concurrency?: number;
  /** Cap on fetched bytes per second across all calls; 0 or absent = unlimited. */
  bandwidthBytesPerSec?: number;
  /** Progress, at most ~4 per second plus a final one on success. */
  onProgress?: (p: StageProgress) => void;
  /** Abort to stop; the stage then rejects with CANCELLED and keeps every verified chunk. */
  signal?: AbortSignal;
  /** If given, the manifest's bundle id must equal it (the id the controller announced). */
  expectedBundleId?: string;
  /** Free-space probe; tests inject a full disk here. Default fs.promises.statfs. */
  statfs?: StatfsFn;
  /** Consecutive fetch failures without progress before a batch gives up (default 5). */
  retries?: number;
  /** First retry delay in ms (default 500, doubling up to 8 s). */
  retryDelayMs?: number;
  /**
   * Files on this host that may hold many of the bundle's chunks though no
   * bundle lists them — the running agent binary, for an agent release: it
   * is chunked (FastCDC, the same cut points as the release) and its chunks
   * are copied instead of fetched, verified on read like every local chunk.
   * A file that cannot be read is skipped.
   */
  localFiles?: readonly string[];
}

/** Outcome of a successful `BundleCache.stage` (bundle-cache.ts). */
export interface StageResult {
  bundleId: string;
  /** Chunk bytes moved over the network by this call. */
  bytesFetched: number;
  /** Bytes of distinct chunks found on this host (an interrupted stage's part files, or other bundles) instead of fetched. */
  bytesReused: number;
}

/** What a stage needs from the cache it stages into (bundle-cache.ts). */
export interface StageTarget {
  layout: BundleLayout;
  log: Logger;
  /** Bundles being staged right now, so prune() leaves their part files alone. */
  running: Set<string>;
  isHeld(bundleId: string): boolean;
  /** Removes what agents before part files left in the cache (once per cache). */
  sweepLegacy(): Promise<void>;
}

/**
 * Stages `signed` (whose manifest `m` is verified and checked) as bundle
 * `id`; see module comment. The caller runs one stage of a bundle at a time.
 */
export async function stageBundle(cache: StageTarget, id: string, signed: SignedManifest, m: BundleManifest, opts: StageOptions): Promise<StageResult> {
  const { layout, log } = cache;
  const label = `${m.name}:${m.version} (${id.slice(0, 12)})`;
  const signal = opts.signal ?? new AbortController().signal;
  const sizes = new Map<string, number>(); // distinct chunks
  for (const f of m.files) for (const c of f.chunks) sizes.set(c.digest, c.size);
  const uniqueBytes = sum(sizes.values());
  const bytesTotal = sum(m.files.map((f) => f.size));
  const progress = new ProgressThrottle(opts.onProgress, (e) => log.warn({ err: String(e) }, 'bundle progress callback threw'));
  if (cache.isHeld(id)) {
    progress.final({ bytesDone: bytesTotal, bytesTotal, bytesFetched: 0 });
    return { bundleId: id, bytesFetched: 0, bytesReused: uniqueBytes };
  }

  const filesDir = layout.filesDir(id);
  const partsDir = layout.partsDir(id);
  let fetched = 0;
  let reused = 0;
  const started = performance.now();
  cache.running.add(id);
  let journal: StageJournal | undefined;
  let parts: PartFiles | undefined;
  try {
    await mkdirExact(filesDir);
    await mkdirExact(partsDir);
    await cache.sweepLegacy();
    const opened = await StageJournal.open(layout.journalPath(id));
    journal = opened.journal;
    parts = await PartFiles.open(partsDir, filesDir, m.files, journal, opened.state);
    const p = parts;

    // Plan. Chunks in other bundles' files (or written in another part file
    // of this one) are only listed here; their bytes are verified when read.
    const others = layout.complete().filter((b) => b.bundleId !== id);
    const index = new LocalChunkIndex(others, (b) => layout.filesDir(b));
    const wanted = p.pendingChunks();
    for (const c of wanted) {
      const own = p.writtenPlace(c.digest);
      if (own) index.add(c.digest, { ...own, size: c.size });
    }
    const seeds = wanted.length > 0 ? await indexLocalFiles(log, index, sizes, opts.localFiles ?? []) : [];
    const local = wanted.filter((c) => index.has(c.digest));
    let remote = wanted.filter((c) => !index.has(c.digest));
    const planned = new Set(remote.map((c) => c.digest));
    reused = uniqueBytes - sum(remote.map((c) => c.size));
    await ensureFreeSpace(layout.root, p.pendingBytes(), 'the files still to assemble', opts.statfs);
    log.info({ bundleId: id, bundle: `${m.name}:${m.version}`, files: m.files.length, bytesTotal, toFetch: uniqueBytes - reused, reused }, 'staging bundle');
    let done = 0;
    const report = () => {
      done = Math.max(done, bytesTotal - p.pendingBytes());
      progress.update({ bytesDone: done, bytesTotal, bytesFetched: fetched });
    };
    report();

    // One buffer for every local copy: an upgrade copies most of a bundle.
    let scratch = Buffer.alloc(0);
    for (const c of local) {
      if (signal.aborted) break;
      if (scratch.length < c.size) scratch = Buffer.allocUnsafe(c.size);
      const bytes = await index.read(c.digest, scratch);
      if (bytes) {
        await p.write(c.digest, bytes);
        report();
      } else {
        // Gone or damaged since planning: fetch it instead.
        log.warn({ bundleId: id, digest: c.digest }, 'a planned local chunk is gone or damaged; fetching it');
        remote.push(c);
        planned.add(c.digest);
        reused -= c.size;
      }
    }
    const bucket = new TokenBucket(opts.bandwidthBytesPerSec ?? 0);
    // Chunks that changed but whose files have an older version here: sub-chunk delta fetch (delta-fetch.ts).
    if (remote.length > 0 && !signal.aborted) {
      for (const b of others.filter((o) => o.manifest.name === m.name)) {
        for (const f of b.manifest.files) seeds.push(...unmatchedRegions(join(layout.filesDir(b.bundleId), f.path), f.chunks, sizes));
      }
      const delta = await deltaFetch(remote, {
        source: opts.source, seeds, bucket, signal, log: log,
        deliver: (digest, data) => p.write(digest, data),
        onFetched: (n) => {
          fetched += n;
          report();
        },
      });
      if (delta.assembled > 0) log.info({ bundleId: id, chunks: delta.assembled, copiedBytes: delta.copiedBytes, wholeChunks: delta.rest.length }, 'chunks assembled from sub-chunks on this host');
      remote = delta.rest;
    }
    const fetchOpts = {
      source: opts.source, bucket, signal, log: log,
      concurrency: opts.concurrency ?? FETCH_CALLS, retries: opts.retries, retryDelayMs: opts.retryDelayMs,
      deliver: (digest: string, data: Buffer) => p.write(digest, data),
      onStored: (_digest: string, size: number) => {
        fetched += size;
        report();
      },
    };
    await fetchChunks(remote, fetchOpts);
    await p.settled();
    // Chunks found damaged in a part file when its file was checked are
    // fetched again; they count as fetched, and no longer as reused.
    while (!p.done()) {
      const again = p.pendingChunks();
      if (again.length === 0) throw new FerryError(ErrorCode.Internal, 'staging ended with files unfinished but nothing left to fetch');
      log.warn({ bundleId: id, chunks: again.map((c) => c.digest) }, 'chunks written on this host went bad on disk; fetching them again');
      for (const c of again) if (!planned.has(c.digest)) reused -= c.size;
      await fetchChunks(again, fetchOpts);
      await p.settled();
    }

    // Every file's directory, also those of files finished by an earlier, interrupted stage.
    const dirs = new Set<string>([filesDir]);
    for (const f of m.files) for (let d = dirname(join(filesDir, f.path)); d.length > filesDir.length; d = dirname(d)) dirs.add(d);
    for (const d of dirs) await fsyncDir(d);
    // The three fields only: a proto-decoded SignedManifest may carry extras.
    await writeFileAtomicAsync(layout.manifestPath(id), JSON.stringify({ manifest: signed.manifest, signature: signed.signature, keyId: signed.keyId }), { mode: 0o644, dirMode: false });
    await fsyncDir(layout.bundlesDir);
    await p.close();
    await journal.close();
    journal = undefined;
    await rm(partsDir, { recursive: true, force: true }).catch((e: Error) => {
      // The bundle is complete; leftovers only cost disk until the next prune.
      log.warn({ bundleId: id, err: e.message }, 'could not remove the part files after a stage');
    });

    const secs = (performance.now() - started) / 1000;
    log.info({ bundleId: id, bytesFetched: fetched, bytesReused: reused, seconds: +secs.toFixed(2) }, 'bundle staged');
    progress.final({ bytesDone: bytesTotal, bytesTotal, bytesFetched: fetched });
    return { bundleId: id, bytesFetched: fetched, bytesReused: reused };
  } catch (e) {
    const fe = describeFailure(e, label, layout.root, signal, fetched, uniqueBytes);
    log.warn({ bundleId: id, code: fe.code, err: fe.message }, 'staging failed');
    await parts?.close();
    await journal?.close().catch(() => undefined);
    parts = journal = undefined;
    // A signed manifest that contradicts itself can never stage: keep nothing of it.
    if (fe.code === ErrorCode.BundleInvalid) await rm(layout.bundleDir(id), { recursive: true, force: true }).catch(() => undefined);
    throw fe;
  } finally {
    await parts?.close();
    await journal?.close().catch(() => undefined);
    cache.running.delete(id);
  }
}

/**
 * Adds the chunks of `files` that the bundle lists and nothing else on the
 * host holds (StageOptions.localFiles). Returns the regions of the files
 * whose chunks the bundle does not list: where a changed chunk's older
 * bytes are, for the sub-chunk delta fetch.
 */
async function indexLocalFiles(log: Logger, index: LocalChunkIndex, sizes: ReadonlyMap<string, number>, files: readonly string[]): Promise<SeedRegion[]> {
  const regions: SeedRegion[] = [];
  for (const path of files) {
    try {
      const { chunks } = await chunkFile(path);
      for (const c of chunks) {
        if (sizes.get(c.digest) === c.length && !index.has(c.digest)) index.add(c.digest, { path, offset: c.offset, size: c.length });
      }
      regions.push(...unmatchedRegions(path, chunks.map((c) => ({ digest: c.digest, size: c.length })), sizes));
    } catch (err) {
      log.warn({ path, err: (err as Error).message }, 'cannot read a local file for chunk reuse; its chunks are fetched');
    }
  }
  return regions;
}

/** Turn whatever stopped a stage into a FerryError that says which bundle, where, and what next. */
function describeFailure(e: unknown, label: string, root: string, signal: AbortSignal, fetched: number, total: number): FerryError {
  if (signal.aborted) {
    return new FerryError(ErrorCode.Cancelled, `staging bundle ${label} was cancelled after fetching ${formatBytes(fetched)} of at most ${formatBytes(total)}`,
      'stage it again: every verified chunk was kept and will not be fetched again', { cause: e });
  }
  if (e instanceof FerryError) {
    return new FerryError(e.code, `staging bundle ${label}: ${e.message}`,
      e.hint ?? 'fix the cause above and stage again: every verified chunk was kept and will not be fetched again', { cause: e });
  }
  const errno = e as NodeJS.ErrnoException;
  if (errno?.code === 'ENOSPC' || errno?.code === 'EDQUOT') {
    return new FerryError(ErrorCode.DiskFull, `staging bundle ${label}: the disk holding ${root} filled up (${errno.message})`,
      'free space on that filesystem and stage again; verified chunks were kept', { cause: e });
  }
  return new FerryError(ErrorCode.Internal, `staging bundle ${label} in ${root} failed: ${errno?.message ?? String(e)}`,
    `check that the agent can write to ${root} and that the disk is healthy, then stage again`, { cause: e });
}

function sum(xs: Iterable<number>): number {
  let t = 0;
  for (const x of xs) t += x;
  return t;
}
