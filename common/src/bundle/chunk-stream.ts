/**
 * The write side of `Chunks.Fetch`, shared by the controller and site relays
 * (agent/src/relay/): chunks go out in request order, each read straight into
 * its wire message, and writes wait while the call has more than
 * {@link MAX_QUEUED_BYTES} queued, so a slow link never makes the server
 * buffer a bundle in memory — and, with a {@link SendBudget}, while all
 * calls together have the budget queued, so a thousand agents fetching at
 * once do not make it buffer a thousand times that.
 */
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { EncodedChunkData } from './chunk-codec.js';
import type { BufferPool } from './buffer-pool.js';

/** Most chunks one call may ask for; agents batch and keep several calls in flight. */
export const MAX_DIGESTS_PER_CALL = 256;
/**
 * Bytes one call may have queued in grpc-js/HTTP/2 before it waits. The
 * stream's own limit counts messages (16), which for 4 MiB chunks is 64 MiB
 * per call; a byte cap keeps the server's memory flat with many agents.
 */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/**
 * Bytes that every call of one server together may have queued in the
 * transport (see module comment). A call with nothing queued may always
 * send one chunk, so no call waits on the others forever; a call with bytes
 * queued waits while the budget is spent, and calls are woken one at a time,
 * oldest first, as bytes are written.
 *
 * Why: memory in flight was each call's own cap times the number of calls
 * (12 MiB × 32 agents), and the chunk buffer pool cannot keep that many, so
 * a fleet fetching at once turned every chunk into fresh external memory
 * and the controller's GC took 16–18% of its CPU (bench-results/bundles.md).
 */
export class SendBudget {
  private spent = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {}

  /** Bytes queued by all calls now. */
  get queued(): number {
    return this.spent;
  }

  /** Calls waiting for room now. */
  get waiters(): number {
    return this.waiting.length;
  }

  /** Whether a call that has bytes queued must wait before reading its next chunk. */
  get exhausted(): boolean {
    return this.spent >= this.limit;
  }

  take(n: number): void {
    this.spent += n;
  }

  release(n: number): void {
    this.spent -= n;
    if (this.spent < this.limit) this.waiting.shift()?.();
  }

  /** Resolves when `release` has room for the caller (or at once if `cancel` is called, then it is no longer queued). */
  wait(): { done: Promise<void>; cancel: () => void } {
    let wake!: () => void;
    const done = new Promise<void>((r) => { wake = r; });
    this.waiting.push(wake);
    return { done, cancel: () => { const i = this.waiting.indexOf(wake); if (i >= 0) this.waiting.splice(i, 1); wake(); } };
  }
}

/** What {@link streamChunks} needs from the server. */
export interface ChunkStreamOptions {
  /** The chunk as a ready-to-send message (throws a FerryError/BundleError to end the call). */
  read: (digest: string) => Promise<EncodedChunkData>;
  pool: BufferPool;
  /** Shared by every call of the server; without one, only the call's own cap applies. */
  budget?: SendBudget;
  /** Called per message handed to the transport, with its wire size. */
  onServed?: (bytes: number, digest: string) => void;
}

/** Writes `digests` to `call` in order (see module comment); returns when all are queued or the call is gone. */
export async function streamChunks(call: ServerWritableStream<unknown, unknown>, digests: readonly string[], o: ChunkStreamOptions): Promise<void> {
  let queued = 0;
  let wake: (() => void) | undefined;
  // Bytes of this call still counted in the budget; a cancelled call may never run its write callbacks, so what is left is returned when it goes.
  let open = true;
  const settle = () => {
    if (!open) return;
    open = false;
    o.budget?.release(queued);
  };
  const onGone = () => { settle(); wake?.(); };
  call.on('cancelled', onGone);
  call.on('close', onGone);
  try {
    for (const digest of digests) {
      if (call.cancelled) return;
      const msg = await o.read(digest);
      if (call.cancelled || !open) {
        // Gone while the chunk was read: nothing to send it to, and nothing may be counted that no callback will return.
        o.pool.give(msg.framed);
        return;
      }
      const n = msg.wire.length;
      queued += n;
      o.budget?.take(n);
      o.onServed?.(n, digest);
      call.write(msg, () => {
        o.pool.give(msg.framed); // written by HTTP/2 (framed in place, grpc-chunks.ts) or copied into grpc-js's frame
        if (!open) return;
        queued -= n;
        o.budget?.release(n);
        wake?.();
      });
      while (!call.cancelled && open && (queued > MAX_QUEUED_BYTES || (queued > 0 && o.budget?.exhausted))) {
        // Woken by this call's own writes, or by the budget when other calls' writes make room.
        const turn = queued > MAX_QUEUED_BYTES ? undefined : o.budget?.wait();
        await new Promise<void>((r) => { wake = r; void turn?.done.then(r); });
        turn?.cancel();
        wake = undefined;
      }
    }
  } catch (e) {
    settle(); // the call ends with an error: its queued writes may never call back
    throw e;
  } finally {
    call.off('cancelled', onGone);
    // 'close' stays: bytes still queued when the call closes without their callbacks go back to the budget then.
    if (call.cancelled) settle();
  }
}

/** `Chunks.Recheck`: hash each named chunk's stored copy again; returns the ones that were bad (and are now dropped). */
export async function recheckAll(served: { recheck(digest: string): Promise<boolean> }, digests: readonly string[]): Promise<string[]> {
  const dropped: string[] = [];
  for (const d of digests.slice(0, MAX_DIGESTS_PER_CALL)) if (await served.recheck(d)) dropped.push(d);
  return dropped;
}
