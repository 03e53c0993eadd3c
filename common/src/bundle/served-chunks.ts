/**
 * Reads chunks for `Chunks.Fetch`, straight into their wire messages.
 *
 * Verification policy: every chunk in the store was hashed when it was
 * written (ChunkStore.put), and every agent hashes every chunk it receives
 * before it counts. Re-hashing on every read (once per agent per chunk) was
 * the largest single cost of serving a bundle, so a chunk is hashed the first
 * time this process serves it — unless this process wrote it itself from
 * bytes it had just hashed (a push, {@link ServedChunks.written}): hashing
 * it again on its first serve was a sha256 per byte of every freshly pushed
 * bundle, the controller's largest CPU cost per GiB served — and again only
 * if its file is seen to change (a different size). That still catches a chunk that rotted while the
 * controller was down, or was rewritten, with DATA_LOSS and the chunk
 * dropped, as before. Rot of the same size after the first serve is caught
 * by the agent (CHUNK_DIGEST_MISMATCH naming the chunk); the prefetch
 * coordinator then calls {@link ServedChunks.forget}, so the next serve
 * hashes again, finds the bad chunk, drops it and reports DATA_LOSS, and a
 * push repairs it.
 *
 * Reads use the callback fs API (no FileHandle promise per step) and read
 * the file into an {@link EncodedChunkData}: one read for a chunk already
 * verified (its size is known), plus an fstat the first time. The files of
 * recently served chunks stay open ({@link ServingLimits.openFiles}): during
 * a rollout every host asks for the same chunks within seconds, and an open
 * and a close per chunk served were two more trips through libuv's thread
 * pool (each a thread wake-up and a main-loop wake-up) for every MiB. Registry
 * clients spread further: skopeo and containerd fetch several layers of an
 * image at once, so 8 of them pulling a 1 GiB image (~1000 chunks) were at
 * ~50 places in it, and 64 open files served almost none of their reads (a
 * CPU profile of the controller put 12% of its main thread in submitting
 * the opens and closes). An open file costs the kernel about a KiB; when
 * the process runs out of descriptors (EMFILE), the idle ones are closed
 * and the open is tried once more. Chunk files
 * are content-addressed and never rewritten in place; a chunk this
 * process removes from the store (collected, or dropped as corrupt) is
 * closed here first (ChunkStore.onRemove), so it is not served from a file
 * held open. One deleted by another process (a replica sharing the chunk
 * directory) may be, with the same bytes, until it leaves this small set.
 */
import { close, fstat, open, read } from 'node:fs';
import { createHash } from 'node:crypto';
import { EncodedChunkData } from './chunk-codec.js';
import { BufferPool } from './buffer-pool.js';
import { SendBudget } from './chunk-stream.js';
import type { ChunkStore } from './chunk-store.js';
import { ChunkCorruptError, ChunkNotFoundError } from './errors.js';

/** Bytes of a chunk's message beyond its data: frame header, digest and tags (96 covers a 64-character digest with room). */
const MESSAGE_OVERHEAD = 96;
/** Bound on remembered sizes; past it the memory starts over (chunks are then hashed once more). */
const MAX_REMEMBERED = 1_000_000;

/** An open chunk file; `readers` reads under way; `dropped` once it left the set while read (closed by its last reader). */
interface OpenChunk { fd: number; readers: number; dropped: boolean }

/** How much one chunk server keeps and queues (see {@link ServedChunks}); the defaults are the controller's. */
export interface ServingLimits {
  /** Bytes all calls together may have queued in the transport (SendBudget). */
  sendBytes: number;
  /** Bytes of free chunk buffers kept for reuse. */
  poolBytes: number;
  /** Chunk files kept open, least recently served closed first (a file being read is never closed under its reader). */
  openFiles: number;
}

/**
 * The controller's: 64 MiB in flight is 2 MiB per agent with 32 fetching at
 * once, more than loopback or a site uplink needs to stay busy; the pool
 * keeps what the budget can have in flight plus the chunks being read, so
 * serving allocates no chunk buffers in steady state (32 buffers, the
 * earlier count, was exhausted by 8 agents and the controller's GC took
 * 16% of its CPU at 32). The pool's memory stays after a rollout.
 */
export const CONTROLLER_SERVING: ServingLimits = { sendBytes: 64 << 20, poolBytes: 96 << 20, openFiles: 1024 };

/** See module comment. One per chunk store. */
export class ServedChunks {
  /**
   * The one buffer pool of this store's readers: a fresh chunk-sized Buffer
   * per chunk served is external memory that drives V8 into back-to-back
   * major collections (a quarter of the registry's CPU before the pool).
   */
  readonly pool: BufferPool;
  /** The one send budget of every Chunks.Fetch call served from this store (common/src/bundle/chunk-stream.ts). */
  readonly budget: SendBudget;
  /** Digest → size of chunks hashed and found intact by this process. */
  private readonly verified = new Map<string, number>();
  /** Open chunk files, least recently served first (Map order). */
  private readonly files = new Map<string, OpenChunk>();

  private readonly openFiles: number;

  constructor(private readonly store: ChunkStore, limits: ServingLimits = CONTROLLER_SERVING) {
    this.openFiles = limits.openFiles;
    this.pool = new BufferPool(Number.POSITIVE_INFINITY, limits.poolBytes);
    this.budget = new SendBudget(limits.sendBytes);
    store.onRemove = (digest) => this.drop(digest);
  }

  /**
   * The chunk as a ready-to-send ChunkData message, laid out in a buffer
   * taken from `pool` when one is large enough. Throws ChunkNotFoundError,
   * or ChunkCorruptError after removing a chunk that no longer matches its digest.
   */
  async read(digest: string, pool?: BufferPool): Promise<EncodedChunkData> {
    const file = await this.openChunk(digest);
    const fd = file.fd;
    try {
      const known = this.verified.get(digest);
      if (known !== undefined) {
        const msg = new EncodedChunkData(digest, known, pool?.take(known + MESSAGE_OVERHEAD));
        if ((await readFully(fd, msg.data)) === known) return msg;
        this.verified.delete(digest); // shorter than when it was verified: check it properly
      }
      const size = await new Promise<number>((res, rej) => fstat(fd, (e, st) => (e ? rej(e) : res(st.size))));
      const msg = new EncodedChunkData(digest, size, pool?.take(size + MESSAGE_OVERHEAD));
      const got = await readFully(fd, msg.data);
      const actual = createHash('sha256').update(msg.data.subarray(0, got)).digest('hex');
      if (got !== size || actual !== digest) {
        await this.store.remove(digest); // which closes its file here too (onRemove)
        throw new ChunkCorruptError(digest, actual);
      }
      if (this.verified.size >= MAX_REMEMBERED) this.verified.clear();
      this.verified.set(digest, size);
      return msg;
    } finally {
      if (--file.readers === 0) {
        if (file.dropped) close(fd, () => undefined);
        else this.trim();
      }
    }
  }

  /** Close every open chunk file not being read (the rest close after their read); later reads open them again. */
  close(): void {
    for (const digest of [...this.files.keys()]) this.drop(digest);
  }

  /** `digest`'s open file, counted as read by one more reader; opened (and the set trimmed) if it is not open. */
  private async openChunk(digest: string): Promise<OpenChunk> {
    let file = this.files.get(digest); // a key here is a digest pathOf validated when it was opened
    if (!file) {
      const path = this.store.pathOf(digest); // validates the digest
      let fd: number;
      try {
        fd = await openForRead(path).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EMFILE' && e.code !== 'ENFILE') throw e;
          this.closeIdle(); // out of descriptors: the idle chunk files give theirs back
          return openForRead(path);
        });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ChunkNotFoundError(digest);
        throw e;
      }
      file = this.files.get(digest); // another read may have opened it meanwhile
      if (file) {
        close(fd, () => undefined);
      } else {
        file = { fd, readers: 0, dropped: false };
      }
    }
    this.files.delete(digest); // most recently served last
    this.files.set(digest, file);
    file.readers++;
    this.trim();
    return file;
  }

  /** Close the least recently served files not being read until at most `openFiles` are open. */
  private trim(): void {
    for (const [d, f] of this.files) {
      if (this.files.size <= this.openFiles) return;
      if (f.readers === 0) this.drop(d);
    }
  }

  /** Close every open file not being read. */
  private closeIdle(): void {
    for (const [d, f] of this.files) if (f.readers === 0) this.drop(d);
  }

  /** `digest`'s file leaves the open set; closed now, or by its last reader. */
  private drop(digest: string): void {
    const f = this.files.get(digest);
    if (!f) return;
    this.files.delete(digest);
    f.dropped = true;
    if (f.readers === 0) close(f.fd, () => undefined);
  }

  /**
   * This process just stored `digest` (`size` bytes) from bytes it hashed
   * (ChunkStore.put returned true): serve it without hashing it again.
   */
  written(digest: string, size: number): void {
    if (this.verified.size >= MAX_REMEMBERED) this.verified.clear();
    this.verified.set(digest, size);
  }

  /** Hash every chunk again on its next serve, from the file the store has now (an agent reported a chunk that did not match its digest). */
  forget(): void {
    this.verified.clear();
    this.close();
  }

  /**
   * Hash `digest`'s stored copy now (Chunks.Recheck: a client got bytes
   * that did not match). Returns true when the copy was bad and is gone; a
   * good or missing copy is left as it is, so a report cannot evict a good chunk.
   */
  async recheck(digest: string): Promise<boolean> {
    this.verified.delete(digest);
    this.drop(digest);
    try {
      await this.read(digest);
      return false;
    } catch (e) {
      if (e instanceof ChunkCorruptError) return true;
      if (e instanceof ChunkNotFoundError) return false;
      throw e;
    }
  }
}

/** `path` opened read-only (callback API: one trip through the thread pool). */
function openForRead(path: string): Promise<number> {
  return new Promise<number>((res, rej) => open(path, 'r', (e, f) => (e ? rej(e) : res(f))));
}

/** Read from offset 0 until `buf` is full or the file ends; returns the bytes read. The one read loop for whole chunk files (also the commit check, controller/src/bundles/file-digests.ts). */
export async function readFully(fd: number, buf: Buffer): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const n = await new Promise<number>((res, rej) => read(fd, buf, got, buf.length - got, got, (e, b) => (e ? rej(e) : res(b))));
    if (n === 0) break;
    got += n;
  }
  return got;
}
