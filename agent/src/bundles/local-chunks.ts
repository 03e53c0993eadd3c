/**
 * Index of chunks that already sit inside the files of complete bundles on
 * this host. An upgrade from A to B shares most chunks with A; reading them
 * out of A's assembled files is what makes the upgrade move only the changed
 * bytes, even after A's staging chunks were cleaned up.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompleteBundle } from './bundle-layout.js';

/** Where a chunk's bytes are: a byte range of an assembled file. */
export interface ChunkLocation {
  path: string;
  offset: number;
  size: number;
}

/** See module comment. Built once per stage; cheap (manifests only, no file reads). */
export class LocalChunkIndex {
  private readonly where = new Map<string, ChunkLocation[]>();

  /** Index the files of `bundles` (their files live in `filesDirOf(bundleId)`). */
  constructor(bundles: CompleteBundle[], filesDirOf: (bundleId: string) => string) {
    for (const b of bundles) {
      const base = filesDirOf(b.bundleId);
      for (const f of b.manifest.files) {
        let offset = 0;
        for (const c of f.chunks) {
          const locs = this.where.get(c.digest);
          const loc = { path: join(base, f.path), offset, size: c.size };
          // A few alternatives are plenty: if the first copy was tampered with, the next is tried.
          if (!locs) this.where.set(c.digest, [loc]);
          else if (locs.length < 4) locs.push(loc);
          offset += c.size;
        }
      }
    }
  }

  /** Also read `digest` from `loc` (e.g. a part file of the stage itself); verified on read like the rest. */
  add(digest: string, loc: ChunkLocation): void {
    const locs = this.where.get(digest);
    if (!locs) this.where.set(digest, [loc]);
    else locs.unshift(loc);
  }

  /** True if some complete bundle lists this chunk (its bytes are still verified on read). */
  has(digest: string): boolean {
    return this.where.has(digest);
  }

  /**
   * The chunk's bytes, read from an assembled file and verified against the
   * digest; `undefined` if no copy is readable and intact (file removed,
   * edited in place, disk rot): the caller then fetches it instead. With
   * `scratch` (at least the chunk's size) the bytes are read into it and a
   * view of it is returned, so a copy loop allocates nothing per chunk.
   */
  async read(digest: string, scratch?: Buffer): Promise<Buffer | undefined> {
    for (const loc of this.where.get(digest) ?? []) {
      const buf = await readRange(loc, scratch).catch(() => undefined);
      if (buf && createHash('sha256').update(buf).digest('hex') === digest) return buf;
    }
    return undefined;
  }
}

async function readRange({ path, offset, size }: ChunkLocation, scratch?: Buffer): Promise<Buffer | undefined> {
  const fh = await open(path, 'r');
  try {
    const buf = scratch && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(buf, got, size - got, offset + got);
      if (bytesRead === 0) return undefined; // file shorter than the manifest says
      got += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}
