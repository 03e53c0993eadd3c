/**
 * Writes one HTTP body cut from a chunk store: the one way the controller's
 * registry and files repository (controller/src/registry/bundle-bytes.ts)
 * and a site relay's (agent/src/relay/relay-registry.ts) send blob and file
 * bytes.
 *
 * - The status line and headers go out only once the first chunk is in
 *   hand, so a chunk that cannot be had before the first byte is still a
 *   JSON error; after it, the connection is aborted, so a client never
 *   takes a short or wrong body for a whole one. A span shorter than the
 *   body is aborted the same way.
 * - The next chunk is read while the current one is written (reading and
 *   sending overlap; a response holds at most two chunks), and each chunk's
 *   buffer goes back to the pool once the socket has taken it (the write's
 *   callback, which also runs when the write fails).
 * - Writes wait for `drain` (or `close`): a slow client never makes the
 *   server buffer a blob.
 * - Each chunk's write takes its bytes from the process's turn budget
 *   (turn-budget.ts), so many fast clients cannot stretch one turn of the
 *   event loop until new connections time out waiting to be accepted.
 */
import type { ServerResponse } from 'node:http';
import type { BufferPool } from '../bundle/buffer-pool.js';
import type { EncodedChunkData } from '../bundle/chunk-codec.js';
import { BODY_TURN_BUDGET } from './turn-budget.js';

/** What {@link sendChunkBody} needs to write one body. */
export interface ChunkBody {
  /** Chunks the body spans, in order. */
  count: number;
  /** Bytes of the first chunk before the body starts. */
  skip: number;
  /** Bytes of the body (its Content-Length). */
  length: number;
  /** The `i`-th chunk of the span, as a message in a buffer of `pool`; called in order, each once. */
  read(i: number): Promise<EncodedChunkData>;
  pool: BufferPool;
  /**
   * Chunk `i` could not be had (`err` from `read`): the caller logs it and
   * returns the error to answer with before the first byte, or throws
   * `err` itself when it is not about the chunk.
   */
  unavailable(i: number, err: unknown): Error;
  /** Writes the status line and headers (once, when the first chunk is in hand). */
  writeHead(): void;
  /** The span ran out `left` bytes before the body's end (the connection is then aborted): for the caller's log. */
  short?(left: number): void;
}

/** Writes `b` to `res` (see module comment); resolves with the body bytes written. */
export async function sendChunkBody(res: ServerResponse, b: ChunkBody): Promise<number> {
  if (b.count === 0 || b.length === 0) {
    b.writeHead();
    res.end();
    return 0;
  }
  let closed = false;
  // One listener pair per body, not per wait: a 1 MiB chunk fills the socket's buffer, so nearly every write waits.
  let wake: (() => void) | undefined;
  const onDrain = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onClose = (): void => {
    closed = true;
    onDrain();
  };
  res.on('drain', onDrain);
  res.once('close', onClose);
  const drained = (): Promise<void> => (closed ? Promise.resolve() : new Promise<void>((resolve) => { wake = resolve; }));
  const readAhead = (i: number): Promise<EncodedChunkData> => {
    const p = b.read(i);
    p.catch(() => undefined); // awaited below, or dropped in finally: never an unhandled rejection
    return p;
  };
  let ahead: Promise<EncodedChunkData> | undefined = readAhead(0);
  let skip = b.skip;
  let left = b.length;
  let sent = 0;
  let headSent = false;
  try {
    for (let i = 0; i < b.count && left > 0 && !closed; i++) {
      let msg: EncodedChunkData;
      try {
        msg = await ahead!;
      } catch (err) {
        ahead = undefined;
        const answer = b.unavailable(i, err);
        if (!headSent) throw answer;
        res.destroy(answer);
        return sent;
      }
      ahead = i + 1 < b.count && left > msg.data.length - skip ? readAhead(i + 1) : undefined;
      const piece = msg.data.subarray(skip, Math.min(msg.data.length, skip + left));
      const turn = BODY_TURN_BUDGET.take(piece.length);
      if (turn) await turn;
      if (closed) {
        b.pool.give(msg.framed); // the client left while the chunk was read or waited its turn: nothing to write it to
        return sent;
      }
      skip = 0;
      left -= piece.length;
      if (!headSent) {
        b.writeHead();
        headSent = true;
      }
      sent += piece.length;
      if (!res.write(piece, () => b.pool.give(msg.framed))) await drained();
    }
    if (closed) return sent;
    if (left > 0) {
      b.short?.(left);
      res.destroy();
      return sent;
    }
    res.end();
    return sent;
  } finally {
    res.off('drain', onDrain);
    res.off('close', onClose);
    // A read still under way when the body ended early: its buffer goes back to the pool when it lands.
    ahead?.then((m) => b.pool.give(m.framed), () => undefined);
  }
}
