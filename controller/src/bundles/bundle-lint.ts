import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { lintBundle, type Finding, type PublishedImages } from '../../../common/src/bundle/lint/index.js';
import type { BundleStore, StoredBundle } from './bundle-store.js';

/** Files lint reads: text and charts; image tars are described by the manifest already. */
const MAX_LINT_FILE = 4 * 1024 * 1024;

function lintable(path: string, size: number): boolean {
  if (path.startsWith('images/') || size > MAX_LINT_FILE) return false;
  return !/\.tar$/i.test(path);
}

/**
 * Lints a stored bundle with the same rules as `ferry bundle lint DIR`: its
 * small files (manifests, charts, scripts, plans, ferry-bundle.yaml) are
 * reassembled from verified chunks into a private temp dir, and the images
 * come from the signed manifest, so the tars are never rebuilt. With `published` (the
 * registry store, when the controller serves a registry), an image published under its
 * rewritten name counts as available too.
 */
export async function lintStoredBundle(store: BundleStore, b: StoredBundle, published?: PublishedImages): Promise<Finding[]> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-lint-'));
  const release = store.lease(b.id);
  try {
    for (const f of b.manifest.files) {
      if (!lintable(f.path, f.size)) continue;
      const parts = await Promise.all(f.chunks.map((c) => store.chunks.get(c.digest)));
      const dest = join(dir, f.path);
      await mkdir(dirname(dest), { recursive: true });
      await writeFile(dest, Buffer.concat(parts), { mode: 0o600 });
    }
    return await lintBundle(dir, { manifest: b.manifest, ...(published ? { published } : {}) });
  } finally {
    release();
    await rm(dir, { recursive: true, force: true });
  }
}
