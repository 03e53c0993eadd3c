/**
 * {@link ChunkSource} over the controller's `Chunks.Fetch` server stream.
 *
 * One client (one HTTP/2 channel) serves every call: the bundle cache keeps
 * several calls in flight on it, which fills a long-fat link better than one
 * stream while sharing a single TLS session.
 */
import { Metadata, status as GrpcStatus, type ChannelCredentials, type ChannelOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { FetchRangesResponse, SketchChunksResponse, type ChunksClient } from '../../../common/src/gen/ferry/v1/chunks.js';
import { BufferPool } from '../../../common/src/bundle/buffer-pool.js';
import { decodeLargeMessagesInto, FastChunksClient } from '../../../common/src/grpc-chunks.js';
import type { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { clientChannelOptions } from '../../../common/src/grpc-options.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import type { ByteRange, ChunkSource, FetchedChunk, RangesReply, SketchReply } from './chunk-source.js';

/**
 * Largest message accepted on chunk calls. Chunks are at most 4 MiB (the
 * chunker's maximum); the headroom lets a controller built with a larger
 * chunker maximum still be read instead of failing with RESOURCE_EXHAUSTED.
 */
export const CHUNK_CALL_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * HTTP/2 flow-control window of the chunk channel (per stream and for the
 * connection). A call's data in flight is capped by it, so it must cover
 * the link's bandwidth × round trip; it is also what one call may hold in
 * the agent's memory beyond grpc-js's 16 buffered messages. With long calls
 * 16 MiB was measured no faster than 4 MiB on one box and held four times
 * the memory per call (peak RSS over 150 MiB), so this is Ferry's 4 MiB
 * default (grpc-options.ts), stated here because the chunk path depends on it.
 */
export const CHUNK_CALL_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * Messages one call may buffer ahead of the consumer. grpc-js hands a call's
 * messages to a Readable whose object-mode high-water mark (16) it does not
 * let callers set, so each call held up to 16 chunks (16-64 MiB) on top of
 * the flow-control window: with long calls that was what put the agent's
 * peak RSS over its 150 MiB goal. Two keep the consumer fed; the window
 * keeps the link busy.
 */
export const CALL_BUFFERED_MESSAGES = 2;

/**
 * Buffers received chunks are assembled in (grpc-chunks.ts
 * decodeLargeMessagesInto), reused once each chunk is written: a call holds
 * at most CALL_BUFFERED_MESSAGES decoded chunks, one being written and one
 * being assembled, so a few cover the agent's one call in flight.
 */
const RECEIVE_POOL = new BufferPool(4);

/** Hints for the transport failures a field tech is most likely to see. */
const HINTS: Partial<Record<string, string>> = {
  [ErrorCode.Unavailable]: 'the link to the controller dropped; staging resumes where it stopped once it is back (verified chunks are kept)',
  [ErrorCode.DeadlineExceeded]: 'the controller did not answer in time; staging resumes where it stopped on the next attempt',
  [ErrorCode.NotFound]: 'the controller no longer holds this bundle\'s chunks; push the bundle to the controller again',
};

/** See module comment. */
export class GrpcChunkSource implements ChunkSource {
  /**
   * Dial `address` (host:port) with the agent's mTLS credentials
   * (see `controllerCreds`). `channelOptions` are merged over Ferry's client
   * defaults and the raised receive limit. `close()` closes the channel.
   */
  static connect(address: string, creds: ChannelCredentials, channelOptions: ChannelOptions = {}, what = 'the controller'): GrpcChunkSource {
    decodeLargeMessagesInto(RECEIVE_POOL);
    const client = new FastChunksClient(address, creds, clientChannelOptions({
      'grpc.max_receive_message_length': CHUNK_CALL_MAX_MESSAGE_BYTES,
      'grpc-node.flow_control_window': CHUNK_CALL_WINDOW_BYTES,
      ...channelOptions,
    }));
    return new GrpcChunkSource(client, address, true, what);
  }

  /**
   * Use an existing client. It must allow messages of at least 4 MiB
   * (see {@link CHUNK_CALL_MAX_MESSAGE_BYTES}); `close()` leaves it open
   * unless `ownsClient`.
   */
  constructor(
    private readonly client: ChunksClient,
    /** Shown in error messages, so a field tech knows which controller failed. */
    readonly address: string = client.getChannel().getTarget(),
    private readonly ownsClient = false,
    /** What is at `address`, for messages ("the controller", "relay edge-gw-7"). */
    private readonly what = 'the controller',
  ) {}

  /**
   * One `Chunks.Fetch` call for `digests`. The stream is consumed pull-wise:
   * grpc-js asks HTTP/2 for the next message only when the call's buffer
   * ({@link CALL_BUFFERED_MESSAGES}) drains, so what a call holds is bounded
   * by that and the flow-control window, however many chunks it asks for.
   */
  async *fetch(digests: string[], signal: AbortSignal): AsyncGenerator<FetchedChunk> {
    if (signal.aborted) throw cancelled(this.address);
    const call = this.client.fetch({ digests });
    limitBuffered(call, CALL_BUFFERED_MESSAGES);
    const onAbort = () => call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const msg of call as AsyncIterable<ChunkData>) {
        // A chunk decoded into a pooled buffer goes back to it once the consumer is done (giveBack ignores any other buffer).
        const data = msg.data;
        yield { digest: msg.digest, data, release: () => RECEIVE_POOL.giveBack(data) };
      }
    } catch (err) {
      if (signal.aborted) throw cancelled(this.address);
      const fe = fromServiceError(err);
      throw new FerryError(fe.code, `fetching ${digests.length} chunk(s) from ${this.what} at ${this.address}: ${fe.message}`,
        fe.hint ?? HINTS[fe.code], { cause: err });
    } finally {
      signal.removeEventListener('abort', onAbort);
      // Ends the call if the consumer stopped early (error elsewhere, abort);
      // a no-op once the server has sent its status.
      call.cancel();
    }
  }

  /** Chunks.Sketch; `undefined` when the server answers UNIMPLEMENTED (an older controller, a relay). */
  async sketch(digests: string[], signal: AbortSignal): Promise<SketchReply | undefined> {
    try {
      const res = await this.unary<SketchChunksResponse>(signal, `sketching ${digests.length} chunk(s)`,
        (cb) => this.client.sketch({ digests }, cb));
      return { ...res, wireBytes: SketchChunksResponse.encode(res).finish().length };
    } catch (e) {
      if ((e as FerryError).cause && ((e as FerryError).cause as ServiceError).code === GrpcStatus.UNIMPLEMENTED) return undefined;
      throw e;
    }
  }

  /** Chunks.FetchRanges. */
  async fetchRanges(digest: string, ranges: ByteRange[], signal: AbortSignal): Promise<RangesReply> {
    const res = await this.unary<FetchRangesResponse>(signal, `fetching ${ranges.length} range(s) of chunk ${digest}`,
      (cb) => this.client.fetchRanges({ digest, ranges }, cb));
    // The reply's size on the wire without encoding it again: field tag, length varint, bytes.
    const n = res.data.length;
    return { data: res.data, wireBytes: n === 0 ? 0 : 1 + varintBytes(n) + n };
  }

  /** A unary call that `signal` cancels, with errors worded like {@link fetch}'s. */
  private async unary<T>(signal: AbortSignal, what: string, start: (cb: (e: ServiceError | null, r: T) => void) => ClientUnaryCall): Promise<T> {
    if (signal.aborted) throw cancelled(this.address);
    let call: ClientUnaryCall | undefined;
    const onAbort = () => call?.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await new Promise<T>((resolve, reject) => {
        call = start((e, r) => (e ? reject(e) : resolve(r)));
      });
    } catch (err) {
      if (signal.aborted) throw cancelled(this.address);
      const fe = fromServiceError(err);
      throw new FerryError(fe.code, `${what} from ${this.what} at ${this.address}: ${fe.message}`, fe.hint ?? HINTS[fe.code], { cause: err });
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Chunks.Recheck: tell the server these chunks came back wrong; it drops its copies that are bad. */
  async recheck(digests: string[]): Promise<string[]> {
    const r = await new Promise<{ dropped: string[] }>((resolve, reject) =>
      this.client.recheck({ digests }, new Metadata(), { deadline: Date.now() + 10_000 }, (e, res) => (e ? reject(fromServiceError(e)) : resolve(res))));
    return r.dropped;
  }

  /** Close the channel if this source opened it. */
  close(): void {
    if (this.ownsClient) this.client.close();
  }
}

/**
 * Lower a Readable's high-water mark after construction (grpc-js builds the
 * call's stream itself). Node reads it from the stream state on every push
 * and read; if that state is ever not where it is in Node 20, the default
 * (16 messages) stays, which is correct, only larger.
 */
function limitBuffered(stream: object, messages: number): void {
  const state = (stream as { _readableState?: { highWaterMark?: unknown } })._readableState;
  if (state && typeof state.highWaterMark === 'number') state.highWaterMark = messages;
}

function varintBytes(n: number): number {
  let len = 1;
  for (; n > 0x7f; n = Math.floor(n / 128)) len++;
  return len;
}

function cancelled(address: string): FerryError {
  return new FerryError(ErrorCode.Cancelled, `chunk fetch from ${address} was cancelled`, 'staging resumes where it stopped when it is started again');
}
