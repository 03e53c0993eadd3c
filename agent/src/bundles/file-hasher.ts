/**
 * The whole-file sha256 of a file being built from chunks that arrive in any
 * order, computed as they are written instead of by reading the finished
 * file back (which was a second full pass of hashing plus a read).
 *
 * SHA-256 is sequential, so the hash advances over the file's chunks in
 * order: a chunk written at the cursor is hashed from memory at once; one
 * written ahead of the cursor is held in memory (within a byte budget shared
 * by the whole stage) until the cursor reaches it, or, past the budget, read
 * back from the part file then. Chunks written by an earlier, interrupted
 * stage are read back the same way. The fetcher schedules one call per file
 * where it can (chunk-fetcher.ts), so most chunks arrive at the cursor.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { BundleFile } from '../../../common/src/bundle/manifest.js';

/** Bytes of out-of-order chunks one stage may hold for hashing; more are read back instead. */
export class HoldBudget {
  used = 0;
  constructor(readonly limit: number) {}
}

/** See module comment. One per file being built. */
export class FileHasher {
  private hash: Hash = createHash('sha256');
  /** Index of the next chunk to hash. */
  private next = 0;
  /** Bytes hashed so far (the offset of chunk `next`). */
  private offset = 0;
  /** Chunks written ahead of the cursor and held in memory. */
  private readonly held = new Map<number, Buffer>();
  /** Chunks written ahead of the cursor, not held: read back when reached. */
  private readonly onDisk = new Set<number>();
  /** Serialises advancing (reads are async). */
  private chain: Promise<void> = Promise.resolve();

  /** `present`: chunk indexes already in the part file (an earlier stage). */
  constructor(private readonly file: BundleFile, private readonly budget: HoldBudget, present: Iterable<number>,
    private readonly partPath: string) {
    for (const i of present) this.onDisk.add(i);
  }

  /**
   * Chunk `index` was written with these bytes. A `transient` buffer is about
   * to be reused by the caller: it is never held, and the returned promise
   * says when the hasher is done with it.
   */
  written(index: number, data: Buffer, transient = false): Promise<void> {
    if (index === this.next) {
      this.chain = this.chain.then(() => this.take(index, data));
    } else if (!transient && this.budget.used + data.length <= this.budget.limit) {
      this.held.set(index, data);
      this.budget.used += data.length;
    } else {
      this.onDisk.add(index);
    }
    this.chain = this.chain.then(() => this.advance());
    this.chain.catch(() => undefined); // a read error surfaces in digest(), not as an unhandled rejection
    return transient ? this.chain : Promise.resolve();
  }

  /** The file's sha256 and length; every chunk must have been written. Reads back what was not hashed yet. */
  async digest(): Promise<{ sha256: string; size: number }> {
    await this.chain;
    const chunks = this.file.chunks;
    for (let i = this.next; i < chunks.length; i++) this.onDisk.add(i);
    await this.advance();
    const sha256 = this.hash.digest('hex');
    return { sha256, size: this.offset };
  }

  /** Start over (chunks were found damaged and are being written again); all written ones are on disk. */
  reset(written: Iterable<number>): void {
    this.release();
    this.hash = createHash('sha256');
    this.next = 0;
    this.offset = 0;
    this.onDisk.clear();
    for (const i of written) this.onDisk.add(i);
  }

  /** Drop held chunks (the stage ends). */
  release(): void {
    for (const b of this.held.values()) this.budget.used -= b.length;
    this.held.clear();
  }

  private async advance(): Promise<void> {
    const chunks = this.file.chunks;
    let fh: FileHandle | undefined;
    try {
      while (this.next < chunks.length) {
        const i = this.next;
        const held = this.held.get(i);
        if (held) {
          this.held.delete(i);
          this.budget.used -= held.length;
          this.take(i, held);
        } else if (this.onDisk.delete(i)) {
          fh ??= await open(this.partPath, 'r');
          const size = chunks[i]!.size;
          const buf = Buffer.allocUnsafe(size);
          let got = 0;
          while (got < size) {
            const { bytesRead } = await fh.read(buf, got, size - got, this.offset + got);
            if (bytesRead === 0) break; // short file: the digest will not match, and the damage search finds why
            got += bytesRead;
          }
          this.take(i, buf.subarray(0, got));
        } else {
          return;
        }
      }
    } finally {
      await fh?.close();
    }
  }

  private take(i: number, data: Buffer): void {
    if (i !== this.next) return; // already taken (the chain advanced past it)
    this.hash.update(data);
    this.offset += data.length;
    this.next++;
  }
}
