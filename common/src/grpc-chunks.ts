/**
 * Service and client definitions for the calls that carry chunk bytes, with
 * the hand-written ChunkData codec (bundle/chunk-codec.ts) in place of the
 * generated serializers. The wire bytes are identical, so either side may
 * still use the generated definitions (tests do, as independent clients);
 * everything else about the services (paths, other methods) is the
 * generated definition unchanged.
 */
import { makeGenericClientConstructor } from '@grpc/grpc-js';
import * as serverCalls from '@grpc/grpc-js/build/src/server-interceptors.js';
import { decodeChunkData, encodeChunkData, EncodedChunkData } from './bundle/chunk-codec.js';
import { AdminClient, AdminService } from './gen/ferry/v1/admin.js';
import { ChunksClient, ChunksService } from './gen/ferry/v1/chunks.js';

/** `ferry.v1.Chunks` with the fast ChunkData codec on Fetch's responses. */
export const FastChunksService = {
  ...ChunksService,
  fetch: { ...ChunksService.fetch, responseSerialize: encodeChunkData, responseDeserialize: decodeChunkData },
} as const satisfies typeof ChunksService;

/** Client for {@link FastChunksService}; same interface as the generated ChunksClient. */
export const FastChunksClient = makeGenericClientConstructor(FastChunksService, 'ferry.v1.Chunks') as unknown as typeof ChunksClient;

/** `ferry.v1.Admin` with the fast ChunkData codec on UploadChunks' requests. */
export const FastAdminService = {
  ...AdminService,
  uploadChunks: { ...AdminService.uploadChunks, requestSerialize: encodeChunkData, requestDeserialize: decodeChunkData },
} as const satisfies typeof AdminService;

/** Client for {@link FastAdminService}; same interface as the generated AdminClient. */
export const FastAdminClient = makeGenericClientConstructor(FastAdminService, 'ferry.v1.Admin') as unknown as typeof AdminClient;

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
