/**
 * The agent's bundle cache: stages signed bundles from the controller onto
 * this host and answers which bundles it holds. Layout and the "manifest.json
 * last" completeness rule are described in bundle-layout.ts; what one stage
 * does, and in which order, in stage-bundle.ts.
 */
import { existsSync } from 'node:fs';
import { readdir, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { assertSha256Hex } from '../../../common/src/bundle/digest.js';
import { bundleId as bundleIdOf, verifyManifest, type BundleManifest, type SignedManifest } from '../../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { HeldBundle } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { BundleLayout } from './bundle-layout.js';
import { checkManifest } from '../../../common/src/bundle/manifest-checks.js';
import { stageBundle, type StageOptions, type StageResult } from './stage-bundle.js';

export type { StageProgress } from './progress.js';

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
    const target = { layout: this.layout, log: this.log, running: this.running, isHeld: (b: string) => this.isHeld(b), sweepLegacy: () => this.sweepLegacy() };
    return this.serialise(id, () => stageBundle(target, id, signed, manifest, opts));
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

  /** Removes what agents before part files left in the cache; once per cache (a stage calls it). */
  private async sweepLegacy(): Promise<void> {
    if (!this.sweptLegacy) {
      // Agents before part files kept verified chunks in DIR/staging; nothing reads them any more.
      await rm(join(this.layout.root, 'staging'), { recursive: true, force: true });
      this.sweptLegacy = true;
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
