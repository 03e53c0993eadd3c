/**
 * Content-addressed chunk store on local disk: `DIR/sha256/ab/abcdef…` (full digest as the file
 * name, first two hex digits as a shard directory so no directory grows past a few thousand
 * entries).
 *
 * Used by the controller (bundle uploads) and by agents (local chunk cache). The invariant is
 * that a file under a digest name was verified against that digest when it was written;
 * `verify()` re-checks it later and evicts anything that rotted. Chunks are public bundle
 * content, not secrets, so files are 0644 and directories 0755.
 */
import { fsyncDir } from '../secure-fs.js';
import { createHash, randomBytes } from 'node:crypto';
import { type Dirent } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Readable, Transform, pipeline } from 'node:stream';
import { assertSha256Hex, isSha256Hex, sha256Hex } from './digest.js';
import { ChunkCorruptError, ChunkDigestMismatchError, ChunkNotFoundError } from './errors.js';

const FILE_MODE = 0o644;
const DIR_MODE = 0o755;
/** Temp files start with a dot so they can never be mistaken for a digest by `list()`. */
const TEMP_PREFIX = '.tmp-';
const SHARD = /^[0-9a-f]{2}$/;

/** Count and total size of the stored chunks. */
export interface ChunkStoreStats {
  count: number;
  bytes: number;
}

/** Outcome of {@link ChunkStore.verify}. A `'corrupt'` chunk has already been removed. */
export type ChunkVerifyStatus = 'ok' | 'missing' | 'corrupt';

function isNotFound(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/** See module comment. Safe for concurrent use within and across processes sharing `dir`. */
export class ChunkStore {
  /** Root directory; chunks live under `root/sha256/`. */
  readonly root: string;
  private readonly base: string;
  private readonly knownShards = new Set<string>();

  /**
   * Does not touch the disk; directories are created on first `put`.
   * `durable: false` skips the fsyncs of `put`: for a cache whose every chunk
   * is verified again before use (a staging area whose chunks are read back
   * and checked after an interruption), one fsync per chunk costs more than the
   * rare refetch after a power cut.
   */
  constructor(root: string, private readonly opts: { durable?: boolean } = {}) {
    this.root = resolve(root);
    this.base = join(this.root, 'sha256');
  }

  /** Absolute path of a chunk. Throws InvalidDigestError for anything but 64 lowercase hex. */
  pathOf(digest: string): string {
    assertSha256Hex(digest);
    return join(this.base, digest.slice(0, 2), digest);
  }

  /** True if a chunk with this digest is stored (not re-verified; see {@link verify}). */
  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(digest))).isFile();
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /**
   * Store `bytes` under `digest`. The bytes are hashed first: on mismatch this throws
   * ChunkDigestMismatchError and writes nothing. The write is crash-safe (temp file in the same
   * directory, fsync, rename, fsync directory), so a chunk name on disk never refers to a
   * partial file. Returns false if the chunk was already present.
   *
   * With `deferDirSync`, the file's data is still fsynced before the rename
   * (its name never refers to bytes that are not on disk), but the shard
   * directory is not: the new name survives a power cut only once
   * {@link syncShardsOf} ran for the digest. A caller that stores many
   * chunks in a row (a push) syncs each shard directory once instead of
   * once per chunk, and must not report a chunk stored before that.
   */
  async put(digest: string, bytes: Uint8Array, opts: { deferDirSync?: boolean } = {}): Promise<boolean> {
    const path = this.pathOf(digest);
    const actual = sha256Hex(bytes);
    if (actual !== digest) throw new ChunkDigestMismatchError(digest, actual);
    if (await this.has(digest)) return false;

    const shard = join(this.base, digest.slice(0, 2));
    await this.ensureShard(shard);
    const tmp = join(shard, `${TEMP_PREFIX}${digest.slice(0, 16)}-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      const fh = await open(tmp, 'wx', FILE_MODE).catch(async (e: unknown) => {
        if (!isNotFound(e)) throw e;
        // Shard directory vanished since we cached it (e.g. an operator cleaned the cache).
        this.knownShards.delete(shard);
        await this.ensureShard(shard);
        return open(tmp, 'wx', FILE_MODE);
      });
      try {
        await fh.writeFile(bytes);
        await fh.chmod(FILE_MODE); // open()'s mode is filtered by umask; be exact
        if (this.opts.durable !== false) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    if (this.opts.durable !== false && !opts.deferDirSync) await fsyncDir(shard);
    return true;
  }

  /** fsync the shard directory of each digest, once per directory: makes puts with `deferDirSync` durable. */
  async syncShardsOf(digests: Iterable<string>): Promise<void> {
    if (this.opts.durable === false) return;
    const shards = new Set<string>();
    for (const d of digests) shards.add(join(this.base, d.slice(0, 2)));
    for (const shard of shards) await fsyncDir(shard);
  }

  /**
   * Read a chunk and re-verify it. Throws ChunkNotFoundError if absent, ChunkCorruptError
   * (after removing the file) if it no longer matches its digest.
   */
  async get(digest: string): Promise<Buffer> {
    const path = this.pathOf(digest);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      if (isNotFound(e)) throw new ChunkNotFoundError(digest);
      throw e;
    }
    const actual = sha256Hex(bytes);
    if (actual !== digest) {
      await this.remove(digest);
      throw new ChunkCorruptError(digest, actual);
    }
    return bytes;
  }

  /**
   * Stream a chunk. Throws ChunkNotFoundError before returning if it is absent. With
   * `verify` (default) the bytes are hashed on the way through and the stream fails with
   * ChunkCorruptError at its end on mismatch (the file is removed), so consumers must treat
   * everything they received as void if the stream errors.
   */
  async createReadStream(digest: string, options: { verify?: boolean } = {}): Promise<Readable> {
    const path = this.pathOf(digest);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if (isNotFound(e)) throw new ChunkNotFoundError(digest);
      throw e;
    }
    const src = fh.createReadStream();
    if (options.verify === false) return src;
    const hash = createHash('sha256');
    const remove = () => this.remove(digest);
    const checked = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        const actual = hash.digest('hex');
        if (actual === digest) return cb();
        remove().then(
          () => cb(new ChunkCorruptError(digest, actual)),
          () => cb(new ChunkCorruptError(digest, actual)),
        );
      },
    });
    // pipeline propagates errors and early destroy() in both directions; the error itself
    // reaches the consumer through `checked`.
    pipeline(src, checked, () => undefined);
    return checked;
  }

  /** Re-hash a stored chunk. A corrupt chunk is removed and reported as `'corrupt'`. */
  async verify(digest: string): Promise<ChunkVerifyStatus> {
    try {
      for await (const _ of await this.createReadStream(digest)) {
        // drain: hashing happens inside the stream
      }
      return 'ok';
    } catch (e) {
      if (e instanceof ChunkNotFoundError) return 'missing';
      if (e instanceof ChunkCorruptError) return 'corrupt';
      throw e;
    }
  }

  /** Verify every stored chunk; returns the digests found corrupt (already removed). */
  async verifyAll(): Promise<{ checked: number; corrupt: string[] }> {
    let checked = 0;
    const corrupt: string[] = [];
    for await (const d of this.list()) {
      checked++;
      if ((await this.verify(d)) === 'corrupt') corrupt.push(d);
    }
    return { checked, corrupt };
  }

  /** All stored digests, shard by shard. Ignores temp files and anything not named like a chunk. */
  async *list(): AsyncGenerator<string> {
    for (const shard of await readdirOrEmpty(this.base)) {
      if (!shard.isDirectory() || !SHARD.test(shard.name)) continue;
      for (const f of await readdirOrEmpty(join(this.base, shard.name))) {
        if (f.isFile() && isSha256Hex(f.name) && f.name.startsWith(shard.name)) yield f.name;
      }
    }
  }

  /**
   * Called with each digest this store deletes, before the file goes: a
   * reader holding chunk files open (served-chunks.ts) lets go of it, so a
   * removed chunk is not served from a file still open.
   */
  onRemove?: (digest: string) => void;

  /** Delete a chunk; false if it was not there. */
  async remove(digest: string): Promise<boolean> {
    const path = this.pathOf(digest); // validates the digest
    this.onRemove?.(digest);
    try {
      await unlink(path);
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** Number of chunks and their total size in bytes. */
  async stats(): Promise<ChunkStoreStats> {
    let count = 0;
    let bytes = 0;
    for await (const d of this.list()) {
      try {
        bytes += (await stat(this.pathOf(d))).size;
        count++;
      } catch (e) {
        if (!isNotFound(e)) throw e; // removed concurrently: not counted
      }
    }
    return { count, bytes };
  }

  /**
   * Delete temp files left by writers that crashed mid-put. Only files older than `maxAgeMs`
   * are touched, so a put in flight in another process is left alone. Returns how many.
   */
  async sweepTempFiles(maxAgeMs = 60 * 60 * 1000): Promise<number> {
    let removed = 0;
    const cutoff = Date.now() - maxAgeMs;
    for (const shard of await readdirOrEmpty(this.base)) {
      if (!shard.isDirectory() || !SHARD.test(shard.name)) continue;
      for (const f of await readdirOrEmpty(join(this.base, shard.name))) {
        if (!f.name.startsWith(TEMP_PREFIX)) continue;
        const p = join(this.base, shard.name, f.name);
        try {
          if ((await stat(p)).mtimeMs <= cutoff) {
            await unlink(p);
            removed++;
          }
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
      }
    }
    return removed;
  }

  private async ensureShard(shard: string): Promise<void> {
    if (this.knownShards.has(shard)) return;
    const first = await mkdir(shard, { recursive: true, mode: DIR_MODE });
    if (first !== undefined) {
      // mkdir's mode is filtered by umask; fix up exactly the directories we created.
      for (let d = shard; d.length >= first.length; d = join(d, '..')) await chmod(d, DIR_MODE);
    }
    this.knownShards.add(shard);
  }
}

async function readdirOrEmpty(dir: string): Promise<Dirent[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}
