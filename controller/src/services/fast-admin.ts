/**
 * `ferry.v1.Admin` with the hand-written ChunkData codec on UploadChunks'
 * requests (the chunks `ferry bundle push` uploads), as
 * common/src/grpc-chunks.ts does for Chunks.Fetch. Kept on the controller's
 * side: the admin API's generated code is several MiB of memory that an
 * agent, which never calls it, should not load.
 */
import { makeGenericClientConstructor } from '@grpc/grpc-js';
import { decodeChunkData, encodeChunkData } from '../../../common/src/bundle/chunk-codec.js';
import { AdminClient, AdminService } from '../../../common/src/gen/ferry/v1/admin.js';

/** `ferry.v1.Admin` with the fast ChunkData codec on UploadChunks' requests. */
export const FastAdminService = {
  ...AdminService,
  uploadChunks: { ...AdminService.uploadChunks, requestSerialize: encodeChunkData, requestDeserialize: decodeChunkData },
} as const satisfies typeof AdminService;

/** Client for {@link FastAdminService}; same interface as the generated AdminClient. */
export const FastAdminClient = makeGenericClientConstructor(FastAdminService, 'ferry.v1.Admin') as unknown as typeof AdminClient;
