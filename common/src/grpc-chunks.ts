/**
 * Service and client definitions for the calls that carry chunk bytes, with
 * the hand-written ChunkData codec (bundle/chunk-codec.ts) in place of the
 * generated serializers. The wire bytes are identical, so either side may
 * still use the generated definitions (tests do, as independent clients);
 * everything else about the services (paths, other methods) is the
 * generated definition unchanged. The admin service's counterpart (chunks
 * uploaded by `ferry bundle push`) is the controller's own
 * (controller/src/services/fast-admin.ts): agents never load the admin API.
 */
import { makeGenericClientConstructor } from '@grpc/grpc-js';
import * as serverCalls from '@grpc/grpc-js/build/src/server-interceptors.js';
import * as streamDecoder from '@grpc/grpc-js/build/src/stream-decoder.js';
import type { BufferPool } from './bundle/buffer-pool.js';
import { decodeChunkData, encodeChunkData, EncodedChunkData } from './bundle/chunk-codec.js';
import { ChunksClient, ChunksService } from './gen/ferry/v1/chunks.js';

/** `ferry.v1.Chunks` with the fast ChunkData codec on Fetch's responses. */
export const FastChunksService = {
  ...ChunksService,
  fetch: { ...ChunksService.fetch, responseSerialize: encodeChunkData, responseDeserialize: decodeChunkData },
} as const satisfies typeof ChunksService;

/** Client for {@link FastChunksService}; same interface as the generated ChunksClient. */
export const FastChunksClient = makeGenericClientConstructor(FastChunksService, 'ferry.v1.Chunks') as unknown as typeof ChunksClient;


/**
 * grpc-js frames every response message by allocating a fresh buffer of
 * its length + 5 and copying the message into it (BaseServerInterceptingCall
 * .serializeMessage, grpc-js 1.x). For Chunks.Fetch that is a chunk-sized
 * allocation and copy per chunk served, and the garbage from it (external
 * memory) is what kept the controller's GC busy. An EncodedChunkData already
 * has room for the 5-byte header in front of its bytes, so it is framed in
 * place: no allocation, no copy, and the buffer goes back to the call's pool
 * once HTTP/2 has written it (the write callback).
 *
 * This reaches into grpc-js internals, so it is checked, not assumed: if the
 * method is not where it is expected, nothing is patched and grpc-js frames
 * as usual (slower, same bytes). Every other message takes grpc-js's own path.
 * Returns whether in-place framing is active.
 */
export function frameChunksInPlace(): boolean {
  const proto = (serverCalls as unknown as { BaseServerInterceptingCall?: { prototype: Record<string | symbol, unknown> } })
    .BaseServerInterceptingCall?.prototype;
  if (!proto || typeof proto['serializeMessage'] !== 'function') return false;
  if (proto[IN_PLACE] === true) return true;
  const original = proto['serializeMessage'] as (this: unknown, value: unknown) => Buffer;
  proto['serializeMessage'] = function serializeMessage(this: unknown, value: unknown): Buffer {
    return value instanceof EncodedChunkData ? value.grpcFrame() : original.call(this, value);
  };
  proto[IN_PLACE] = true;
  return true;
}

const IN_PLACE = Symbol.for('ferry.grpc-js.frameChunksInPlace');

/** The fields of grpc-js's StreamDecoder (1.x) that {@link decodeLargeMessagesInto} works on; same names, same meaning. */
interface DecoderState {
  maxReadMessageLength: number;
  readState: number;
  readCompressFlag: Buffer;
  readPartialSize: Buffer;
  readSizeRemaining: number;
  readMessageSize: number;
  readPartialMessage: Buffer[];
  readMessageRemaining: number;
  [ASSEMBLY]?: Buffer;
}

const NO_DATA = 0;
const READING_SIZE = 1;
const READING_MESSAGE = 2;
const ASSEMBLY = Symbol('ferry.grpc-js.assembly');
const POOLED_DECODER = Symbol.for('ferry.grpc-js.decodeLargeMessagesInto');
/** Where the patched decoder lends from (see decodeLargeMessagesInto). */
let active: { pool: BufferPool; minBytes: number };

/**
 * grpc-js assembles every received message by keeping the HTTP/2 DATA
 * pieces until the message is complete, then Buffer.concat into a fresh
 * allocation (StreamDecoder.write). For Chunks.Fetch on the agent that is a
 * chunk-sized allocation per chunk, and that garbage (external memory) was
 * what drove its dozens of major collections per GiB. With this, a message
 * of at least `minBytes` (frame header included) is copied piece by piece,
 * as it arrives, into a buffer lent by `pool`; the consumer gives it back
 * ({@link BufferPool.giveBack}, any view of it) once nothing refers to its
 * bytes, and a message nobody gives back is simply collected. Same bytes,
 * same messages, the same single copy; smaller messages take grpc-js's path.
 *
 * Process-wide (the decoder has no idea which call it serves): the pool and
 * size of the latest call are used. That is safe because a pool only takes
 * back what it lent itself. Reaches into grpc-js internals, so it is
 * checked, not assumed: if the decoder does not look as expected, nothing is
 * patched. Returns whether pooled decoding is active.
 */
export function decodeLargeMessagesInto(pool: BufferPool, minBytes = 64 * 1024): boolean {
  const Decoder = (streamDecoder as unknown as { StreamDecoder?: new (max: number) => object }).StreamDecoder;
  const proto = Decoder?.prototype as Record<string | symbol, unknown> | undefined;
  if (!Decoder || !proto || typeof proto['write'] !== 'function') return false;
  active = { pool, minBytes };
  if (proto[POOLED_DECODER] === true) return true;
  const probe = new Decoder(-1) as Partial<DecoderState>;
  if (probe.readState !== NO_DATA || !Buffer.isBuffer(probe.readPartialSize) || probe.readPartialSize.length !== 4
    || !Array.isArray(probe.readPartialMessage) || probe.maxReadMessageLength !== -1) return false;
  proto['write'] = function write(this: DecoderState, data: Buffer): Buffer[] {
    let head = 0;
    const result: Buffer[] = [];
    while (head < data.length) {
      switch (this.readState) {
        case NO_DATA:
          this.readCompressFlag = data.subarray(head, head + 1);
          head += 1;
          this.readState = READING_SIZE;
          this.readPartialSize.fill(0);
          this.readSizeRemaining = 4;
          this.readMessageSize = 0;
          this.readMessageRemaining = 0;
          this.readPartialMessage = [];
          this[ASSEMBLY] = undefined;
          break;
        case READING_SIZE: {
          const n = Math.min(data.length - head, this.readSizeRemaining);
          data.copy(this.readPartialSize, 4 - this.readSizeRemaining, head, head + n);
          this.readSizeRemaining -= n;
          head += n;
          if (this.readSizeRemaining > 0) break;
          const size = this.readPartialSize.readUInt32BE(0);
          this.readMessageSize = size;
          if (this.maxReadMessageLength !== -1 && size > this.maxReadMessageLength) {
            throw new Error(`Received message larger than max (${size} vs ${this.maxReadMessageLength})`);
          }
          this.readMessageRemaining = size;
          if (size === 0) {
            result.push(Buffer.concat([this.readCompressFlag, this.readPartialSize], 5));
            this.readState = NO_DATA;
            break;
          }
          this.readState = READING_MESSAGE;
          if (size + 5 >= active.minBytes) {
            const into = active.pool.lend(size + 5);
            into[0] = this.readCompressFlag[0]!;
            this.readPartialSize.copy(into, 1);
            this[ASSEMBLY] = into;
          }
          break;
        }
        case READING_MESSAGE: {
          const n = Math.min(data.length - head, this.readMessageRemaining);
          const into = this[ASSEMBLY];
          if (into) data.copy(into, 5 + this.readMessageSize - this.readMessageRemaining, head, head + n);
          else this.readPartialMessage.push(data.subarray(head, head + n));
          this.readMessageRemaining -= n;
          head += n;
          if (this.readMessageRemaining === 0) {
            result.push(into ?? Buffer.concat([this.readCompressFlag, this.readPartialSize, ...this.readPartialMessage], this.readMessageSize + 5));
            this[ASSEMBLY] = undefined;
            this.readPartialMessage = [];
            this.readState = NO_DATA;
          }
          break;
        }
        default:
          throw new Error('Unexpected read state');
      }
    }
    return result;
  };
  proto[POOLED_DECODER] = true;
  return true;
}
