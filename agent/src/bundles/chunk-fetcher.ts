/**
 * Fetches missing chunks from a {@link ChunkSource}: long calls (a file's
 * chunks each), a few in flight, rate-limited, every chunk's sha256 verified
 * before it is handed
 * on (written into the bundle's part files), transient link failures retried
 * while progress is being made.
 */
import { ErrorCode, FerryError, asFerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import { createHash } from 'node:crypto';
import type { ChunkSource } from './chunk-source.js';
import { sleep, type TokenBucket } from './token-bucket.js';

/**
 * Chunks per call: the controller's limit (MAX_DIGESTS_PER_CALL). Long calls
 * carrying a whole file's chunks were measured against short ones (16 chunks
 * / 4 MiB, 4 in flight): every call costs a stream, headers, trailers and a
 * fresh set of buffers on both sides, and at 4 MiB per call that overhead
 * and its garbage were a large share of both processes' CPU. A retry
 * re-asks only for the chunks the call had not delivered yet.
 */
export const BATCH_CHUNKS = 256;
/**
 * Bytes per call (unless a single chunk is larger). The memory one call can
 * hold is bounded by the transport, not by this: grpc-js buffers at most 16
 * received messages per call and HTTP/2 at most the flow-control window
 * (CHUNK_CALL_WINDOW_BYTES), whatever the call carries in all.
 */
export const BATCH_BYTES = 512 * 1024 * 1024;
/** Errors worth another call: the link or the controller blinked, the data is fine. */
const TRANSIENT = new Set<string>([ErrorCode.Unavailable, ErrorCode.DeadlineExceeded]);

/** A chunk to fetch, with the size the manifest gives it. */
export interface WantedChunk {
  digest: string;
  size: number;
  /**
   * The file it is for. Batches never mix groups, and calls in flight prefer
   * different groups, so each file's chunks arrive in order and files are
   * finished (and their part files closed) one after another.
   */
  group?: number;
}

/** Options of {@link fetchChunks}. */
export interface FetchChunksOptions {
  source: ChunkSource;
  /**
   * Takes a chunk whose bytes matched its digest (and size); resolves once it
   * is written. `data` may be reused once this resolves, so it must not be
   * kept (part-files.ts `write`).
   */
  deliver: (digest: string, data: Buffer) => Promise<void>;
  bucket: TokenBucket;
  /** Calls in flight. */
  concurrency: number;
  signal: AbortSignal;
  /** Called once per chunk after it was verified and delivered. */
  onStored: (digest: string, size: number) => void;
  log: Logger;
  /** Consecutive failed attempts of one batch, without any chunk gained, before giving up. */
  retries?: number;
  /** First retry delay; doubles per attempt up to 8 s. */
  retryDelayMs?: number;
}

/**
 * Split into batches of one group each, at most `maxChunks` chunks and
 * (unless a single chunk is larger) `maxBytes` bytes. The limits are
 * parameters only so the bench's stage probe can replay the old short calls.
 */
export function batches(chunks: WantedChunk[], maxChunks = BATCH_CHUNKS, maxBytes = BATCH_BYTES): WantedChunk[][] {
  const out: WantedChunk[][] = [];
  let cur: WantedChunk[] = [];
  let bytes = 0;
  for (const c of chunks) {
    if (cur.length > 0 && (cur.length >= maxChunks || bytes + c.size > maxBytes || c.group !== cur[0]!.group)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(c);
    bytes += c.size;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * Fetch every chunk in `wanted` and deliver it. Resolves when all are delivered;
 * on the first fatal error, stops the other calls and rejects with it. Chunks
 * delivered before a failure stay written: they are verified, and the next
 * attempt skips them.
 */
export async function fetchChunks(wanted: WantedChunk[], opts: FetchChunksOptions): Promise<void> {
  const queue = batches(wanted);
  // One failing worker stops the rest; an outside abort stops everyone.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  opts.signal.addEventListener('abort', onAbort, { once: true });
  let firstError: unknown;
  // Groups with a call in flight: the next batch of a busy group is taken
  // only when every remaining batch belongs to one (the last, big files).
  const busy = new Map<number | undefined, number>();
  const next = () => {
    const i = queue.findIndex((b) => !busy.has(b[0]!.group));
    return queue.splice(Math.max(0, i), 1)[0];
  };
  const worker = async () => {
    for (let b = next(); b && !stop.signal.aborted; b = next()) {
      const g = b[0]!.group;
      busy.set(g, (busy.get(g) ?? 0) + 1);
      try {
        await fetchBatch(b, opts, stop.signal);
      } catch (e) {
        firstError ??= e;
        stop.abort();
      } finally {
        const n = busy.get(g)! - 1;
        if (n === 0) busy.delete(g);
        else busy.set(g, n);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency, queue.length)) }, worker));
  } finally {
    opts.signal.removeEventListener('abort', onAbort);
  }
  if (opts.signal.aborted) throw new FerryError(ErrorCode.Cancelled, 'chunk fetch was cancelled', 'start staging again to resume');
  if (firstError !== undefined) throw firstError;
}

async function fetchBatch(batch: WantedChunk[], opts: FetchChunksOptions, signal: AbortSignal): Promise<void> {
  const pending = new Map(batch.map((c) => [c.digest, c.size]));
  const retries = opts.retries ?? 5;
  let failures = 0;
  while (pending.size > 0) {
    const before = pending.size;
    try {
      for await (const { digest, data, verified, release } of opts.source.fetch([...pending.keys()], signal)) {
        const size = pending.get(digest);
        if (size === undefined) {
          throw new FerryError(ErrorCode.ChunkDigestMismatch, `the chunk source sent chunk ${String(digest).slice(0, 80)}, which was not requested (or sent it twice)`,
            'the controller is misbehaving; check its version and logs');
        }
        // The rate cap counts bytes as they are taken off the stream: with
        // backpressure, waiting here is what slows the sender.
        await opts.bucket.take(data.length, signal);
        // On this thread: a worker was measured (bench-results/bundles.md, issue 16) to cost about as much main-thread
        // time per chunk in postMessage as the hash it moves, more CPU in all, and more GC from the buffers crossing isolates.
        verify(digest, size, data, verified === true ? digest : createHash('sha256').update(data).digest('hex'));
        await opts.deliver(digest, data);
        release?.();
        pending.delete(digest);
        opts.onStored(digest, size);
      }
      if (pending.size > 0) {
        throw new FerryError(ErrorCode.Unavailable, `the chunk stream ended after ${batch.length - pending.size} of ${batch.length} chunks`,
          'the controller ended the call early; staging retries, then resumes on the next attempt');
      }
    } catch (e) {
      const fe = asFerryError(e);
      if (signal.aborted || !TRANSIENT.has(fe.code)) throw fe;
      // Progress resets the count: a flaky link that keeps moving data is not a failure.
      failures = pending.size < before ? 1 : failures + 1;
      if (failures > retries) throw fe;
      const delay = Math.min(8000, (opts.retryDelayMs ?? 500) * 2 ** (failures - 1));
      opts.log.warn({ code: fe.code, err: fe.message, remaining: pending.size, retryInMs: delay }, 'chunk fetch failed; retrying');
      await sleep(delay, signal);
    }
  }
}

/** The bytes must hash to the digest (else the source is at fault) and have the manifest's size (else the manifest is). */
function verify(digest: string, size: number, data: Buffer, actual: string): void {
  if (actual !== digest) {
    throw new FerryError(ErrorCode.ChunkDigestMismatch,
      `chunk ${digest} from the controller hashes to ${actual} (${data.length} bytes); it was refused and not stored`,
      'the controller\'s copy is corrupt or was tampered with: check the controller log for corrupt chunks and push the bundle again (`ferry bundle push`)');
  }
  if (data.length !== size) {
    // The bytes are genuine (they hash right), so the signed manifest is what is wrong.
    throw new FerryError(ErrorCode.BundleInvalid, `chunk ${digest} is ${data.length} bytes but the manifest says ${size}`,
      'the manifest is inconsistent: rebuild the bundle with `ferry bundle build` and push it again');
  }
}
