/**
 * The agent's bundle cache: stages signed bundles from the controller onto
 * this host and answers which bundles it holds. Layout and the "manifest.json
 * last" completeness rule are described in bundle-layout.ts.
 *
 * Staging order, and why:
 * 1. verify the signature, then the paths and modes: a foreign or hostile
 *    manifest must not cause a single byte to be written;
 * 2. plan: every distinct chunk is either in staging (an earlier, interrupted
 *    stage), inside the files of another complete bundle (an upgrade), or
 *    missing; only missing ones cross the link;
 * 3. check free space for the fetch plus the assembled files;
 * 4. fetch into staging (verified, durable: a kill loses nothing verified);
 * 5. assemble every file atomically, then write manifest.json;
 * 6. drop this bundle's staging chunks no other running stage needs.
 */
import { existsSync } from 'node:fs';
import { readFile, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ChunkStore } from '../../../common/src/bundle/chunk-store.js';
import { assertSha256Hex } from '../../../common/src/bundle/digest.js';
import { bundleId as bundleIdOf, verifyManifest, type BundleFile, type BundleManifest, type SignedManifest } from '../../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { HeldBundle } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { BundleLayout } from './bundle-layout.js';
import type { ChunkSource } from './chunk-source.js';
import { fetchChunks, type WantedChunk } from './chunk-fetcher.js';
import { ensureFreeSpace, formatBytes, type StatfsFn } from './disk-space.js';
import { AssembledFileMismatchError, assembleFile, fsyncDir, mkdirExact, removeTempFiles, writeFileAtomic, type ReadChunk } from './file-assembler.js';
import { LocalChunkIndex } from './local-chunks.js';
import { checkManifest } from './manifest-checks.js';
import { ProgressThrottle, type StageProgress } from './progress.js';
import { TokenBucket } from './token-bucket.js';

export type { StageProgress } from './progress.js';

/** Options of {@link BundleCache.stage}. */
export interface StageOptions {
  /** Operator public keys (PEM) pinned at enrollment; the manifest must verify against one. */
  trustedKeys: readonly string[];
  /** Where missing chunks come from (the controller, via GrpcChunkSource). */
  source: ChunkSource;
  /** Fetch calls in flight (default 4), each asking for up to 16 chunks / 8 MiB. */
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
}

/** Outcome of a successful {@link BundleCache.stage}. */
export interface StageResult {
  bundleId: string;
  /** Chunk bytes moved over the network by this call. */
  bytesFetched: number;
  /** Bytes of distinct chunks found on this host (staging or other bundles) instead of fetched. */
  bytesReused: number;
}

/** See module comment. One instance per cache directory per process. */
export class BundleCache {
  private readonly layout: BundleLayout;
  private readonly staging: ChunkStore;
  /** Per bundle id: the tail of the queue of operations on it (stage, remove). */
  private readonly locks = new Map<string, Promise<void>>();
  /** Chunks each running stage still needs, so no stage cleans up under another's feet. */
  private readonly running = new Map<string, ReadonlySet<string>>();
  private sweptStaging = false;

  /** `dir` is created on the first stage. */
  constructor(dir: string, private readonly log: Logger) {
    this.layout = new BundleLayout(dir);
    // Staged chunks are checked again by the whole-file digest at assembly: no fsync per chunk.
    this.staging = new ChunkStore(this.layout.stagingDir, { durable: false });
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
    checkManifest(manifest);
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
   * Delete staging chunks no running stage needs: the leftovers of stages
   * that were abandoned (a bundle the controller no longer wants). Those
   * stages would then refetch them if started again.
   */
  async prune(): Promise<{ removed: number; bytes: number }> {
    let removed = 0;
    let bytes = 0;
    for await (const d of this.staging.list()) {
      if (this.neededByRunning(d)) continue;
      const size = await stat(this.staging.pathOf(d)).then((st) => st.size, () => 0);
      if (await this.staging.remove(d)) {
        removed++;
        bytes += size;
      }
    }
    return { removed, bytes };
  }

  private async stageLocked(id: string, signed: SignedManifest, m: BundleManifest, opts: StageOptions): Promise<StageResult> {
    const label = `${m.name}:${m.version} (${id.slice(0, 12)})`;
    const signal = opts.signal ?? new AbortController().signal;
    const sizes = new Map<string, number>(); // distinct chunks
    const occurrence = new Map<string, number>(); // bytes a chunk contributes to files, duplicates included
    for (const f of m.files) {
      for (const c of f.chunks) {
        sizes.set(c.digest, c.size);
        occurrence.set(c.digest, (occurrence.get(c.digest) ?? 0) + c.size);
      }
    }
    const uniqueBytes = sum(sizes.values());
    const bytesTotal = sum(m.files.map((f) => f.size));
    const progress = new ProgressThrottle(opts.onProgress, (e) => this.log.warn({ err: String(e) }, 'bundle progress callback threw'));
    if (this.isHeld(id)) {
      progress.final({ bytesDone: bytesTotal, bytesTotal, bytesFetched: 0 });
      return { bundleId: id, bytesFetched: 0, bytesReused: uniqueBytes };
    }

    const filesDir = this.layout.filesDir(id);
    let fetched = 0;
    let done = 0;
    const started = performance.now();
    this.running.set(id, new Set(sizes.keys()));
    try {
      await mkdirExact(filesDir);
      if (!this.sweptStaging) {
        await this.staging.sweepTempFiles();
        this.sweptStaging = true;
      }
      await removeTempFiles(filesDir, new Set(m.files.map((f) => f.path)));

      // Plan. Chunks in other bundles' files are only listed here; their bytes are verified when read.
      const others = this.layout.complete().filter((b) => b.bundleId !== id);
      const index = new LocalChunkIndex(others, (b) => this.layout.filesDir(b));
      const missing: WantedChunk[] = [];
      for (const [digest, size] of sizes) {
        if ((await this.staging.has(digest)) || index.has(digest)) done += occurrence.get(digest)!;
        else missing.push({ digest, size });
      }
      const planned = new Set(missing.map((c) => c.digest));
      let reused = uniqueBytes - sum(missing.map((c) => c.size));
      const toFetch = uniqueBytes - reused;
      await ensureFreeSpace(this.layout.root, toFetch + bytesTotal, 'the chunks to fetch and the assembled files', opts.statfs);
      this.log.info({ bundleId: id, bundle: `${m.name}:${m.version}`, files: m.files.length, bytesTotal, toFetch, reused }, 'staging bundle');
      progress.update({ bytesDone: done, bytesTotal, bytesFetched: 0 });

      const bucket = new TokenBucket(opts.bandwidthBytesPerSec ?? 0);
      const fetchOpts = {
        source: opts.source, staging: this.staging, bucket, signal, log: this.log,
        concurrency: opts.concurrency ?? 4, retries: opts.retries, retryDelayMs: opts.retryDelayMs,
        onStored: (digest: string, size: number) => {
          fetched += size;
          done += occurrence.get(digest) ?? 0;
          progress.update({ bytesDone: done, bytesTotal, bytesFetched: fetched });
        },
      };
      await fetchChunks(missing, fetchOpts);

      // Chunks that turn out unusable during assembly are fetched late; they
      // count as fetched, and no longer as reused if they were planned so.
      const refetch = (chunks: WantedChunk[]) => fetchChunks(chunks, {
        ...fetchOpts,
        onStored: (digest, size) => {
          fetched += size;
          if (!planned.has(digest)) reused -= size;
        },
      });
      // Assemble. Staged chunks are read without re-hashing: the whole-file
      // sha256 catches any rot, and then the culprit chunks are found below.
      const readChunk = async (digest: string, size: number): Promise<Buffer> => {
        const staged = await readFile(this.staging.pathOf(digest)).catch(() => undefined);
        if (staged?.length === size) return staged;
        if (staged) await this.staging.remove(digest); // truncated: evict, or put() would keep it
        const local = await index.read(digest);
        if (local) return local;
        // Gone since planning (another bundle removed, staging pruned): fetch it now.
        this.log.warn({ bundleId: id, digest }, 'a planned local chunk is gone or damaged; fetching it');
        await refetch([{ digest, size }]);
        return readFile(this.staging.pathOf(digest));
      };
      const dirs = new Set<string>([filesDir]);
      for (const f of m.files) {
        await this.assembleChecked(filesDir, f, readChunk, signal, refetch);
        for (let d = dirname(join(filesDir, f.path)); d.length > filesDir.length; d = dirname(d)) dirs.add(d);
      }
      for (const d of dirs) await fsyncDir(d);
      // The three fields only: a proto-decoded SignedManifest may carry extras.
      await writeFileAtomic(this.layout.manifestPath(id), JSON.stringify({ manifest: signed.manifest, signature: signed.signature, keyId: signed.keyId }));
      await fsyncDir(this.layout.bundlesDir);
      await this.dropStaged(id, sizes.keys());

      const secs = (performance.now() - started) / 1000;
      this.log.info({ bundleId: id, bytesFetched: fetched, bytesReused: reused, seconds: +secs.toFixed(2) }, 'bundle staged');
      progress.final({ bytesDone: bytesTotal, bytesTotal, bytesFetched: fetched });
      return { bundleId: id, bytesFetched: fetched, bytesReused: reused };
    } catch (e) {
      const fe = describeFailure(e, label, this.layout.root, signal, fetched, uniqueBytes);
      this.log.warn({ bundleId: id, code: fe.code, err: fe.message }, 'staging failed');
      throw fe;
    } finally {
      this.running.delete(id);
    }
  }

  /**
   * assembleFile, plus: on a whole-file mismatch, tell disk rot from a bad
   * manifest. Staged chunks that no longer match their digest are evicted,
   * fetched again and the file assembled once more; if none was corrupt, the
   * manifest itself is inconsistent and the mismatch stands.
   */
  private async assembleChecked(filesDir: string, f: BundleFile, readChunk: ReadChunk, signal: AbortSignal, refetch: (c: WantedChunk[]) => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await assembleFile(filesDir, f, readChunk, signal);
      } catch (e) {
        if (!(e instanceof AssembledFileMismatchError)) throw e;
        const corrupt = new Map<string, number>();
        for (const c of f.chunks) if ((await this.staging.verify(c.digest)) === 'corrupt') corrupt.set(c.digest, c.size);
        if (corrupt.size === 0) throw e;
        this.log.warn({ file: f.path, corrupt: [...corrupt.keys()] }, 'staged chunks were corrupt on disk; evicted, fetching them again');
        if (attempt > 1) {
          throw new FerryError(ErrorCode.ChunkCorrupt,
            `file ${JSON.stringify(f.path)} did not match its sha256 twice: staged chunks under ${this.staging.root} keep going bad on disk (${[...corrupt.keys()][0]}…)`,
            'check the disk (dmesg, smartctl) and the filesystem before staging again');
        }
        await refetch([...corrupt].map(([digest, size]) => ({ digest, size })));
      }
    }
  }

  /** Delete this bundle's staging chunks, except those another running stage needs. */
  private async dropStaged(id: string, digests: Iterable<string>): Promise<void> {
    try {
      for (const d of digests) if (!this.neededByRunning(d, id)) await this.staging.remove(d);
    } catch (e) {
      // The bundle is complete; leftovers only cost disk until the next prune.
      this.log.warn({ bundleId: id, err: (e as Error).message }, 'could not clean staging after a stage');
    }
  }

  private neededByRunning(digest: string, except?: string): boolean {
    for (const [id, needs] of this.running) if (id !== except && needs.has(digest)) return true;
    return false;
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
