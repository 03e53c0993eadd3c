/**
 * On-disk layout of the agent's bundle cache:
 *
 * ```
 * DIR/bundles/<bundleId>/files/…     assembled files, at their manifest paths
 * DIR/bundles/<bundleId>/parts/.ferry-part-<i>   file i (manifest order) being built (part-files.ts)
 * DIR/bundles/<bundleId>/parts/journal   chunks verified and written, files finished (stage-journal.ts)
 * DIR/bundles/<bundleId>/manifest.json   the SignedManifest, written LAST
 * ```
 *
 * `parts/` exists only while a stage is unfinished (or was abandoned; see
 * BundleCache.prune) and is removed once manifest.json is in place.
 *
 * A bundle is complete exactly when its manifest.json exists: it is renamed
 * into place only after every file was verified and made durable, so a crash
 * at any moment leaves either a complete bundle or an incomplete one that the
 * next stage finishes.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isSha256Hex } from '../../../common/src/bundle/digest.js';
import type { BundleManifest, SignedManifest } from '../../../common/src/bundle/manifest.js';
import { checkManifest } from '../../../common/src/bundle/manifest-checks.js';

/** Name of the file whose presence marks a bundle complete. */
export const MANIFEST_FILE = 'manifest.json';

/** A complete bundle as found on disk. */
export interface CompleteBundle {
  bundleId: string;
  signed: SignedManifest;
  manifest: BundleManifest;
}

/** Paths of the cache and the scan of complete bundles (see module comment). */
export class BundleLayout {
  readonly root: string;
  readonly bundlesDir: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.bundlesDir = join(this.root, 'bundles');
  }

  bundleDir(bundleId: string): string {
    return join(this.bundlesDir, bundleId);
  }

  filesDir(bundleId: string): string {
    return join(this.bundlesDir, bundleId, 'files');
  }

  partsDir(bundleId: string): string {
    return join(this.bundlesDir, bundleId, 'parts');
  }

  journalPath(bundleId: string): string {
    return join(this.bundlesDir, bundleId, 'parts', 'journal');
  }

  manifestPath(bundleId: string): string {
    return join(this.bundlesDir, bundleId, MANIFEST_FILE);
  }

  /**
   * Every complete bundle, read synchronously (manifests are small and this
   * runs when the session says hello). A manifest.json that is unreadable,
   * does not hash to its directory name, or fails the manifest checks is
   * skipped and reported through `onBad`: a damaged entry must not hide the
   * others, nor be offered as a source of reusable bytes.
   */
  complete(onBad: (bundleId: string, why: string) => void = () => undefined): CompleteBundle[] {
    let names: string[];
    try {
      names = readdirSync(this.bundlesDir).filter(isSha256Hex).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: CompleteBundle[] = [];
    for (const bundleId of names) {
      let text: string;
      try {
        text = readFileSync(this.manifestPath(bundleId), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') onBad(bundleId, (e as Error).message);
        continue; // no manifest.json: an unfinished stage, not a held bundle
      }
      try {
        const signed = JSON.parse(text) as SignedManifest;
        if (typeof signed?.manifest !== 'string' || createHash('sha256').update(signed.manifest).digest('hex') !== bundleId) {
          throw new Error('manifest.json does not match its bundle id');
        }
        const manifest = JSON.parse(signed.manifest) as BundleManifest;
        checkManifest(manifest, 'the cached bundle is ignored');
        out.push({ bundleId, signed, manifest });
      } catch (e) {
        onBad(bundleId, (e as Error).message);
      }
    }
    return out;
  }
}
