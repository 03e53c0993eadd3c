/**
 * Serves byte ranges of bundle files straight from the chunk store: the one
 * way the registry (a blob is a range of an image tar) and the files
 * repository (a whole file) send bytes. Chunks are read through
 * ServedChunks, which hashes a chunk the first time this process serves it
 * (see served-chunks.ts for that policy), into its pooled buffers. A chunk missing or corrupt before
 * the first byte is sent is a 500 JSON error; after that the connection is
 * aborted, so a client never takes a short or wrong body for a whole one.
 * Either way the log names the chunk.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from '../../../common/src/log.js';
import type { BundleFile } from '../../../common/src/bundle/manifest.js';
import { ChunkCorruptError, ChunkNotFoundError } from '../../../common/src/bundle/errors.js';
import type { BundleStore, StoredBundle } from '../bundles/bundle-store.js';
import { RegistryError } from '../../../common/src/registry/http-error.js';
import { sendChunkBody } from '../../../common/src/registry/chunk-body.js';

/** A bundle file with the end offset of each chunk, for finding a range's chunks. */
export interface IndexedBundleFile {
  file: BundleFile;
  ends: number[];
}

interface CachedBundle { bundle: StoredBundle; files: Map<string, IndexedBundleFile> }

/** Bundles are immutable by id; parsing a large manifest per request would cost more than serving. */
const MAX_CACHED = 32;

/** See module comment. */
export class BundleBytes {
  private readonly cache = new Map<string, CachedBundle>();

  constructor(private readonly bundles: BundleStore, private readonly log: Logger) {}

  /** A committed bundle and its files by path; undefined if it is gone. */
  async bundle(id: string): Promise<CachedBundle | undefined> {
    const hit = this.cache.get(id);
    if (hit) return hit;
    const bundle = await this.bundles.byId(id);
    if (!bundle) return undefined;
    const files = new Map<string, IndexedBundleFile>();
    for (const file of bundle.manifest.files) {
      let at = 0;
      files.set(file.path, { file, ends: file.chunks.map((c) => (at += c.size)) });
    }
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    const entry = { bundle, files };
    this.cache.set(id, entry);
    return entry;
  }

  /**
   * Writes bytes [start, end] (inclusive) of `f` to `res` after `writeHead`
   * (called once the first chunk is in hand), through the chunk store's
   * verifying reader and its buffer pool (common/src/registry/chunk-body.ts).
   * Resolves with the bytes sent.
   */
  async send(res: ServerResponse, bundleId: string, f: IndexedBundleFile, start: number, end: number, writeHead: () => void): Promise<number> {
    const release = this.bundles.lease(bundleId);
    const served = this.bundles.served;
    try {
      const first = firstChunk(f.ends, start);
      const last = Math.min(firstChunk(f.ends, end), f.ends.length - 1);
      return await sendChunkBody(res, {
        count: end < start ? 0 : Math.max(0, last - first + 1), // an empty body (an empty file) spans no chunk
        skip: start - (first === 0 ? 0 : f.ends[first - 1]!),
        length: Math.max(0, end - start + 1),
        read: (k) => served.read(f.file.chunks[first + k]!.digest, served.pool),
        pool: served.pool,
        writeHead,
        unavailable: (k, err) => {
          if (!(err instanceof ChunkNotFoundError || err instanceof ChunkCorruptError)) throw err;
          const digest = f.file.chunks[first + k]!.digest;
          const what = err instanceof ChunkNotFoundError ? 'missing' : 'corrupt';
          this.log.error({ chunk: digest, bundle: bundleId, file: f.file.path, err: err.message }, `registry: chunk ${digest} of ${f.file.path} is ${what} on the controller's disk`);
          return new RegistryError(500, 'BLOB_UNAVAILABLE', `chunk ${digest} of bundle file ${f.file.path} is ${what} on the controller's disk; push the bundle again to repair it`);
        },
      });
    } finally {
      release();
    }
  }
}

/**
 * The chunks holding bytes [start, end] (inclusive) of `f`, and where the
 * range starts in the first: what a site relay needs to send the same bytes
 * from its own chunk cache (resolve-http.ts).
 */
export function chunkSpan(f: IndexedBundleFile, start: number, end: number): { chunks: Array<{ digest: string; size: number }>; skip: number; length: number } {
  if (end < start) return { chunks: [], skip: 0, length: 0 };
  const first = firstChunk(f.ends, start);
  const last = Math.min(firstChunk(f.ends, end), f.ends.length - 1);
  const chunks = f.file.chunks.slice(first, last + 1).map((c) => ({ digest: c.digest, size: c.size }));
  return { chunks, skip: start - (first === 0 ? 0 : f.ends[first - 1]!), length: end - start + 1 };
}

/** Index of the chunk holding byte `pos`. */
function firstChunk(ends: number[], pos: number): number {
  let lo = 0;
  let hi = ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ends[mid]! > pos) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
