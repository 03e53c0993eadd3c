/**
 * The write side of `Chunks.Fetch`, shared by the controller and site relays
 * (agent/src/relay/): chunks go out in request order, each read straight into
 * its wire message, and writes wait while the call has more than
 * {@link MAX_QUEUED_BYTES} queued, so a slow link never makes the server
 * buffer a bundle in memory.
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

/** What {@link streamChunks} needs from the server. */
export interface ChunkStreamOptions {
  /** The chunk as a ready-to-send message (throws a FerryError/BundleError to end the call). */
  read: (digest: string) => Promise<EncodedChunkData>;
  pool: BufferPool;
  /** Called per message handed to the transport, with its wire size. */
  onServed?: (bytes: number, digest: string) => void;
}

/** Writes `digests` to `call` in order (see module comment); returns when all are queued or the call is gone. */
export async function streamChunks(call: ServerWritableStream<unknown, unknown>, digests: readonly string[], o: ChunkStreamOptions): Promise<void> {
  let queued = 0;
  let wake: (() => void) | undefined;
  const onGone = () => wake?.(); // a cancelled call may never run its write callbacks
  call.on('cancelled', onGone);
  call.on('close', onGone);
  try {
    for (const digest of digests) {
      if (call.cancelled) return;
      const msg = await o.read(digest);
      const n = msg.wire.length;
      queued += n;
      o.onServed?.(n, digest);
      call.write(msg, () => {
        o.pool.give(msg.framed); // written by HTTP/2 (framed in place, grpc-chunks.ts) or copied into grpc-js's frame
        queued -= n;
        if (queued <= MAX_QUEUED_BYTES) wake?.();
      });
      if (queued > MAX_QUEUED_BYTES && !call.cancelled) await new Promise<void>((r) => { wake = r; });
      wake = undefined;
    }
  } finally {
    call.off('cancelled', onGone);
    call.off('close', onGone);
  }
}

/** `Chunks.Recheck`: hash each named chunk's stored copy again; returns the ones that were bad (and are now dropped). */
export async function recheckAll(served: { recheck(digest: string): Promise<boolean> }, digests: readonly string[]): Promise<string[]> {
  const dropped: string[] = [];
  for (const d of digests.slice(0, MAX_DIGESTS_PER_CALL)) if (await served.recheck(d)) dropped.push(d);
  return dropped;
}
