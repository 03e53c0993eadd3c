/**
 * Chunk-sized buffers kept for reuse, on both ends of the chunk path.
 *
 * Why: a fresh chunk-sized Buffer per chunk is external memory to V8, and
 * every few dozen MiB of it starts a major collection. Serving or receiving
 * a GiB that way cost dozens of major GCs per GiB on each side (perf and
 * bench-results/bundles.md). A buffer goes back to the pool only once
 * nothing refers to its bytes any more; that moment is the caller's to know
 * (a socket write's callback, a chunk written to disk).
 *
 * Two ways in:
 * - {@link give}: the controller hands back a message allocation it made
 *   itself (EncodedChunkData.framed) once the transport is done with it;
 * - {@link lend} / {@link giveBack}: a buffer lent out whole (the agent's
 *   gRPC decoder assembling a received message into it) comes back through
 *   any view of it, and only if this pool lent it, so a Buffer of unknown
 *   origin is never taken for a free one.
 */

/** See module comment. */
export class BufferPool {
  private readonly free: Buffer[] = [];
  /** Bytes of the free buffers. */
  private kept = 0;
  /** Allocations lent by {@link lend} and not given back yet. */
  private readonly lent = new WeakSet<ArrayBufferLike>();

  /**
   * `max`: buffers kept at most; `maxBytes`: bytes kept at most (chunk
   * buffers range from 256 KiB to 4 MiB, so a count alone bounds nothing
   * useful for a server). Buffers handed back beyond either are left to the GC.
   */
  constructor(private readonly max = 16, private readonly maxBytes = Number.POSITIVE_INFINITY) {}

  /** The smallest free buffer of at least `size` bytes, or undefined (the caller allocates). Best fit, so a large chunk's buffer is not spent on a small chunk while the next large one allocates. */
  take(size: number): Buffer | undefined {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.length;
      if (len >= size && (best < 0 || len < this.free[best]!.length)) best = i;
    }
    if (best < 0) return undefined;
    const b = this.free[best]!;
    this.free[best] = this.free[this.free.length - 1]!;
    this.free.pop();
    this.kept -= b.length;
    return b;
  }

  /**
   * Hand back a message's allocation (EncodedChunkData.framed) once the
   * transport is done with it. Only a buffer that owns its whole
   * ArrayBuffer is kept: small ones come from node's shared Buffer pool,
   * which must never be reused.
   */
  give(framed: Buffer): void {
    if (framed.byteOffset !== 0 || framed.buffer.byteLength <= Buffer.poolSize) return;
    this.keep(framed.buffer);
  }

  /**
   * `size` bytes (uninitialised) in a buffer that owns its allocation: a
   * free one, or a new one. Hand it back with {@link giveBack} once nothing
   * refers to it; one never handed back is simply collected.
   */
  lend(size: number): Buffer {
    const b = this.take(size) ?? Buffer.allocUnsafeSlow(size);
    this.lent.add(b.buffer);
    return b.subarray(0, size);
  }

  /** `view` (any part of a buffer from {@link lend}) is no longer used: its allocation is free again. Views of anything else are ignored. */
  giveBack(view: Uint8Array): void {
    const ab = view.buffer;
    if (!this.lent.has(ab)) return;
    this.lent.delete(ab);
    this.keep(ab);
  }

  /** `ab` is free: kept if both bounds allow. */
  private keep(ab: ArrayBufferLike): void {
    if (this.free.length >= this.max || this.kept + ab.byteLength > this.maxBytes) return;
    this.free.push(Buffer.from(ab, 0, ab.byteLength));
    this.kept += ab.byteLength;
  }
}
