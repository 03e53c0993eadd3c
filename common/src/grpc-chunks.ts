/**
 * Service and client definitions for the calls that carry chunk bytes, with
 * the hand-written ChunkData codec (bundle/chunk-codec.ts) in place of the
 * generated serializers. The wire bytes are identical, so either side may
 * still use the generated definitions (tests do, as independent clients);
 * everything else about the services (paths, other methods) is the
 * generated definition unchanged.
 */
import { makeGenericClientConstructor } from '@grpc/grpc-js';
import { decodeChunkData, encodeChunkData } from './bundle/chunk-codec.js';
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
