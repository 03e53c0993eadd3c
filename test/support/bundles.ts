import { createHash, randomBytes } from 'node:crypto';
import { chunkBuffer } from '../../common/src/bundle/fastcdc.js';
import { signManifest, type BundleManifest, type SignedManifest } from '../../common/src/bundle/manifest.js';

/** An in-memory bundle: signed manifest plus every chunk's bytes. */
export interface MemBundle {
  signed: SignedManifest;
  manifest: BundleManifest;
  chunks: Map<string, Buffer>;
  files: Map<string, Buffer>;
}

/** Builds and signs a bundle from in-memory files with the real chunker. */
export function memBundle(name: string, version: string, files: Record<string, Buffer>, privatePem: string,
  more: Partial<Pick<BundleManifest, 'images' | 'rewrites'>> = {}): MemBundle {
  const chunks = new Map<string, Buffer>();
  const manifest: BundleManifest = {
    schema: 'ferry.bundle/v1', name, version, arch: ['amd64'], createdAt: new Date(0).toISOString(), images: more.images ?? [], rewrites: more.rewrites ?? [],
    files: Object.entries(files).sort(([a], [b]) => a.localeCompare(b)).map(([path, data]) => {
      const cs = chunkBuffer(data);
      for (const c of cs) chunks.set(c.digest, Buffer.from(data.subarray(c.offset, c.offset + c.length)));
      return {
        path, mode: path.startsWith('bin/') ? 0o755 : 0o644, size: data.length,
        sha256: createHash('sha256').update(data).digest('hex'), chunks: cs.map((c) => ({ digest: c.digest, size: c.length })),
      };
    }),
  };
  return { signed: signManifest(manifest, privatePem), manifest, chunks, files: new Map(Object.entries(files)) };
}

export function randomFile(mib: number): Buffer {
  return randomBytes(Math.round(mib * 1024 * 1024));
}
