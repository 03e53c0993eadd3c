/**
 * The agent's bundle cache: stages signed bundles from the controller onto
 * this host and answers which bundles it holds. Layout and the "manifest.json
 * last" completeness rule are described in bundle-layout.ts.
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
import { existsSync } from 'node:fs';
import { readdir, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { assertSha256Hex } from '../../../common/src/bundle/digest.js';
import { bundleId as bundleIdOf, verifyManifest, type BundleManifest, type SignedManifest } from '../../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { HeldBundle } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { BundleLayout } from './bundle-layout.js';
import type { ChunkSource } from './chunk-source.js';
import { fetchChunks } from './chunk-fetcher.js';
import { deltaFetch, unmatchedRegions, type SeedRegion } from './delta-fetch.js';
import { ensureFreeSpace, formatBytes, type StatfsFn } from './disk-space.js';
import { fsyncDir, writeFileAtomicAsync } from '../../../common/src/secure-fs.js';
import { mkdirExact } from './file-assembler.js';
import { LocalChunkIndex } from './local-chunks.js';
import { chunkFile } from '../../../common/src/bundle/fastcdc.js';
import { checkManifest } from '../../../common/src/bundle/manifest-checks.js';
import { PartFiles } from './part-files.js';
import { ProgressThrottle, type StageProgress } from './progress.js';
import { StageJournal } from './stage-journal.js';
import { TokenBucket } from './token-bucket.js';

export type { StageProgress } from './progress.js';

/**
 * Chunks.Fetch calls in flight by default. One long call (a file's chunks)
 * already keeps the link busy; each call may hold grpc-js's 16 buffered
 * messages plus a flow-control window of chunks in the agent's memory, and
 * two calls were measured no faster than one while holding ~20 MiB more at
 * peak (bench-results/bundles.md).
 */
export const FETCH_CALLS = 1;

/** Options of {@link BundleCache.stage}. */
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

/** Outcome of a successful {@link BundleCache.stage}. */
export interface StageResult {
  bundleId: string;
  /** Chunk bytes moved over the network by this call. */
  bytesFetched: number;
  /** Bytes of distinct chunks found on this host (an interrupted stage's part files, or other bundles) instead of fetched. */
  bytesReused: number;
}

/** See module comment. One instance per cache directory per process. */
export class BundleCache {
  private readonly layout: BundleLayout;
  /** Per bundle id: the tail of the queue of operations on it (stage, remove). */
  private readonly locks = new Map<string, Promise<void>>();
  /** Bundles being staged right now, so prune() leaves their part files alone. */
  private readonly running = new Set<string>();
  private sweptLegacy = false;

  /** `dir` is created on the first stage. */
  constructor(dir: string, private readonly log: Logger) {
    this.layout = new BundleLayout(dir);
  }

  /** Absolute root of the cache. */
  get dir(): string {
    return this.layout.root;
  }

  /** Complete bundles on this host, for the session's hello. Damaged entries are logged and skipped. */
  held(): HeldBundle[] {
    return this.layout.complete((id, why) => this.log.warn({ bundleId: id, why }, 'ignoring a damaged bundle in the cache'))
      .map((b) => ({ bundleId: b.bundleId, name: b.manifest.name, version: b.manifest.version }));
  }

  /** True if the bundle is completely staged. */
  isHeld(bundleId: string): boolean {
    return existsSync(this.layout.manifestPath(assertSha256Hex(bundleId)));
  }

  /**
   * Directory holding a complete bundle's files at their manifest paths.
   * Throws NOT_FOUND for a bundle that is not (completely) staged, so step
   * executors can never pick up a half-staged one.
   */
  filesDir(bundleId: string): string {
    if (!this.isHeld(bundleId)) {
      throw new FerryError(ErrorCode.NotFound, `bundle ${bundleId} is not staged on this host (no ${this.layout.manifestPath(bundleId)})`,
        'stage the bundle on this host first (rollouts do this before the first step)');
    }
    return this.layout.filesDir(bundleId);
  }

  /**
   * Stage a signed bundle: verify, fetch what is missing, assemble. Idempotent
   * (an already complete bundle returns at once) and resumable (an
   * interrupted stage refetches nothing it verified). Stages of the same
   * bundle run one after the other; different bundles may stage in parallel.
   * Errors are FerryErrors: SIGNATURE_INVALID, BUNDLE_INVALID, DISK_FULL,
   * CHUNK_DIGEST_MISMATCH, UNAVAILABLE, CANCELLED, ...
   */
  async stage(signed: SignedManifest, opts: StageOptions): Promise<StageResult> {
    const manifest = parseVerified(signed, opts.trustedKeys);
    const id = bundleIdOf(signed);
    if (opts.expectedBundleId !== undefined && opts.expectedBundleId !== id) {
      throw new FerryError(ErrorCode.BundleInvalid, `the manifest sent for bundle ${opts.expectedBundleId} has id ${id}; nothing was written`,
        'the controller sent mismatching data: check its version and logs');
    }
    checkManifest(manifest, 'nothing was written');
    return this.serialise(id, () => this.stageLocked(id, signed, manifest, opts));
  }

  /**
   * Remove a bundle (complete or partially staged). manifest.json goes first,
   * so a crash half way leaves an incomplete bundle, never a "complete" one
   * with files missing. Returns false if there was nothing to remove.
   */
  async remove(bundleId: string): Promise<boolean> {
    assertSha256Hex(bundleId);
    return this.serialise(bundleId, async () => {
      const dir = this.layout.bundleDir(bundleId);
      if (!existsSync(dir)) return false;
      await unlink(this.layout.manifestPath(bundleId)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      await rm(dir, { recursive: true, force: true });
      this.log.info({ bundleId }, 'bundle removed');
      return true;
    });
  }

  /**
   * Delete the part files of stages that are neither running nor complete:
   * the leftovers of stages that were abandoned (a bundle the controller no
   * longer wants). Those stages would fetch everything again if restarted.
   * Returns how many stages were dropped and the bytes freed.
   */
  async prune(): Promise<{ removed: number; bytes: number }> {
    let removed = 0;
    let bytes = 0;
    const ids = await readdir(this.layout.bundlesDir).catch(() => [] as string[]);
    for (const id of ids) {
      const parts = this.layout.partsDir(id);
      if (this.running.has(id) || this.locks.has(id) || !existsSync(parts)) continue;
      await this.serialise(id, async () => {
        for (const f of await readdir(parts)) bytes += await stat(join(parts, f)).then((st) => st.blocks * 512, () => 0);
        await rm(existsSync(this.layout.manifestPath(id)) ? parts : this.layout.bundleDir(id), { recursive: true, force: true });
        removed++;
      });
    }
    return { removed, bytes };
  }

  /**
   * Adds the chunks of `files` that the bundle lists and nothing else on the
   * host holds (StageOptions.localFiles). Returns the regions of the files
   * whose chunks the bundle does not list: where a changed chunk's older
   * bytes are, for the sub-chunk delta fetch.
   */
  private async indexLocalFiles(index: LocalChunkIndex, sizes: ReadonlyMap<string, number>, files: readonly string[]): Promise<SeedRegion[]> {
    const regions: SeedRegion[] = [];
    for (const path of files) {
      try {
        const { chunks } = await chunkFile(path);
        for (const c of chunks) {
          if (sizes.get(c.digest) === c.length && !index.has(c.digest)) index.add(c.digest, { path, offset: c.offset, size: c.length });
        }
        regions.push(...unmatchedRegions(path, chunks.map((c) => ({ digest: c.digest, size: c.length })), sizes));
      } catch (err) {
        this.log.warn({ path, err: (err as Error).message }, 'cannot read a local file for chunk reuse; its chunks are fetched');
      }
    }
    return regions;
  }

  private async stageLocked(id: string, signed: SignedManifest, m: BundleManifest, opts: StageOptions): Promise<StageResult> {
    const label = `${m.name}:${m.version} (${id.slice(0, 12)})`;
    const signal = opts.signal ?? new AbortController().signal;
    const sizes = new Map<string, number>(); // distinct chunks
    for (const f of m.files) for (const c of f.chunks) sizes.set(c.digest, c.size);
    const uniqueBytes = sum(sizes.values());
    const bytesTotal = sum(m.files.map((f) => f.size));
    const progress = new ProgressThrottle(opts.onProgress, (e) => this.log.warn({ err: String(e) }, 'bundle progress callback threw'));
    if (this.isHeld(id)) {
      progress.final({ bytesDone: bytesTotal, bytesTotal, bytesFetched: 0 });
      return { bundleId: id, bytesFetched: 0, bytesReused: uniqueBytes };
    }

    const filesDir = this.layout.filesDir(id);
    const partsDir = this.layout.partsDir(id);
    let fetched = 0;
    let reused = 0;
    const started = performance.now();
    this.running.add(id);
    let journal: StageJournal | undefined;
    let parts: PartFiles | undefined;
    try {
      await mkdirExact(filesDir);
      await mkdirExact(partsDir);
      if (!this.sweptLegacy) {
        // Agents before part files kept verified chunks in DIR/staging; nothing reads them any more.
        await rm(join(this.layout.root, 'staging'), { recursive: true, force: true });
        this.sweptLegacy = true;
      }
      const opened = await StageJournal.open(this.layout.journalPath(id));
      journal = opened.journal;
      parts = await PartFiles.open(partsDir, filesDir, m.files, journal, opened.state);
      const p = parts;

      // Plan. Chunks in other bundles' files (or written in another part file
      // of this one) are only listed here; their bytes are verified when read.
      const others = this.layout.complete().filter((b) => b.bundleId !== id);
      const index = new LocalChunkIndex(others, (b) => this.layout.filesDir(b));
      const wanted = p.pendingChunks();
      for (const c of wanted) {
        const own = p.writtenPlace(c.digest);
        if (own) index.add(c.digest, { ...own, size: c.size });
      }
      const seeds = wanted.length > 0 ? await this.indexLocalFiles(index, sizes, opts.localFiles ?? []) : [];
      const local = wanted.filter((c) => index.has(c.digest));
      let remote = wanted.filter((c) => !index.has(c.digest));
      const planned = new Set(remote.map((c) => c.digest));
      reused = uniqueBytes - sum(remote.map((c) => c.size));
      await ensureFreeSpace(this.layout.root, p.pendingBytes(), 'the files still to assemble', opts.statfs);
      this.log.info({ bundleId: id, bundle: `${m.name}:${m.version}`, files: m.files.length, bytesTotal, toFetch: uniqueBytes - reused, reused }, 'staging bundle');
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
          this.log.warn({ bundleId: id, digest: c.digest }, 'a planned local chunk is gone or damaged; fetching it');
          remote.push(c);
          planned.add(c.digest);
          reused -= c.size;
        }
      }
      const bucket = new TokenBucket(opts.bandwidthBytesPerSec ?? 0);
      // Chunks that changed but whose files have an older version here: sub-chunk delta fetch (delta-fetch.ts).
      if (remote.length > 0 && !signal.aborted) {
        for (const b of others.filter((o) => o.manifest.name === m.name)) {
          for (const f of b.manifest.files) seeds.push(...unmatchedRegions(join(this.layout.filesDir(b.bundleId), f.path), f.chunks, sizes));
        }
        const delta = await deltaFetch(remote, {
          source: opts.source, seeds, bucket, signal, log: this.log,
          deliver: (digest, data) => p.write(digest, data),
          onFetched: (n) => {
            fetched += n;
            report();
          },
        });
        if (delta.assembled > 0) this.log.info({ bundleId: id, chunks: delta.assembled, copiedBytes: delta.copiedBytes, wholeChunks: delta.rest.length }, 'chunks assembled from sub-chunks on this host');
        remote = delta.rest;
      }
      const fetchOpts = {
        source: opts.source, bucket, signal, log: this.log,
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
        this.log.warn({ bundleId: id, chunks: again.map((c) => c.digest) }, 'chunks written on this host went bad on disk; fetching them again');
        for (const c of again) if (!planned.has(c.digest)) reused -= c.size;
        await fetchChunks(again, fetchOpts);
        await p.settled();
      }

      // Every file's directory, also those of files finished by an earlier, interrupted stage.
      const dirs = new Set<string>([filesDir]);
      for (const f of m.files) for (let d = dirname(join(filesDir, f.path)); d.length > filesDir.length; d = dirname(d)) dirs.add(d);
      for (const d of dirs) await fsyncDir(d);
      // The three fields only: a proto-decoded SignedManifest may carry extras.
      await writeFileAtomicAsync(this.layout.manifestPath(id), JSON.stringify({ manifest: signed.manifest, signature: signed.signature, keyId: signed.keyId }), { mode: 0o644, dirMode: false });
      await fsyncDir(this.layout.bundlesDir);
      await p.close();
      await journal.close();
      journal = undefined;
      await rm(partsDir, { recursive: true, force: true }).catch((e: Error) => {
        // The bundle is complete; leftovers only cost disk until the next prune.
        this.log.warn({ bundleId: id, err: e.message }, 'could not remove the part files after a stage');
      });

      const secs = (performance.now() - started) / 1000;
      this.log.info({ bundleId: id, bytesFetched: fetched, bytesReused: reused, seconds: +secs.toFixed(2) }, 'bundle staged');
      progress.final({ bytesDone: bytesTotal, bytesTotal, bytesFetched: fetched });
      return { bundleId: id, bytesFetched: fetched, bytesReused: reused };
    } catch (e) {
      const fe = describeFailure(e, label, this.layout.root, signal, fetched, uniqueBytes);
      this.log.warn({ bundleId: id, code: fe.code, err: fe.message }, 'staging failed');
      await parts?.close();
      await journal?.close().catch(() => undefined);
      parts = journal = undefined;
      // A signed manifest that contradicts itself can never stage: keep nothing of it.
      if (fe.code === ErrorCode.BundleInvalid) await rm(this.layout.bundleDir(id), { recursive: true, force: true }).catch(() => undefined);
      throw fe;
    } finally {
      await parts?.close();
      await journal?.close().catch(() => undefined);
      this.running.delete(id);
    }
  }

  private serialise<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.locks.get(id) ?? Promise.resolve()).then(fn);
    const tail = run.then(() => undefined, () => undefined);
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return run;
  }
}

/** verifyManifest, with garbage in the signed bytes reported as BUNDLE_INVALID rather than a SyntaxError. */
function parseVerified(signed: SignedManifest, trustedKeys: readonly string[]): BundleManifest {
  if (typeof signed?.manifest !== 'string' || signed.manifest.length === 0) {
    throw new FerryError(ErrorCode.BundleInvalid, 'the bundle stage carries no manifest; nothing was written', 'the controller sent an empty stage request: check its version and logs');
  }
  try {
    return verifyManifest(signed, trustedKeys);
  } catch (e) {
    if (e instanceof FerryError) throw e;
    if (e instanceof SyntaxError) {
      throw new FerryError(ErrorCode.BundleInvalid, `the signed bundle manifest is not valid JSON (${e.message}); nothing was written`,
        'rebuild the bundle with `ferry bundle build` and push it again');
    }
    // createPublicKey failed: a pinned key is unusable, which no bundle can fix.
    throw new FerryError(ErrorCode.Config, `cannot check the bundle signature: a trusted operator key is not a valid public key (${(e as Error).message})`,
      'the operator keys pinned at enrollment are damaged: re-enroll this host or restore them');
  }
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
