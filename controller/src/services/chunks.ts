import type { ServerWritableStream } from '@grpc/grpc-js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { ChunksServer, FetchChunksRequest } from '../../../common/src/gen/ferry/v1/chunks.js';
import type { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { toServiceError } from '../../../common/src/grpc-status.js';
import type { ControllerContext } from './context.js';
import { authenticatePeer } from './peer-auth.js';

/** Most chunks one call may ask for; agents batch and keep several calls in flight. */
const MAX_DIGESTS_PER_CALL = 256;

/**
 * Chunks.Fetch: streams chunk bytes to enrolled agents. Each chunk is
 * re-verified as it is read, so a faulty disk on the controller ends the call
 * with DATA_LOSS instead of sending bad bytes; writes wait for the stream to
 * drain, so a slow link never makes the controller buffer a bundle in memory.
 */
export function chunksService(ctx: ControllerContext): ChunksServer {
  return {
    fetch(call: ServerWritableStream<FetchChunksRequest, ChunkData>) {
      (async () => {
        const peer = authenticatePeer(call, ctx.ca, 'agent');
        const agent = await ctx.agents.get(peer.id);
        if (!agent || agent.revokedAt !== null) throw new FerryError(ErrorCode.AgentRevoked, `agent ${peer.id} may not fetch chunks`);
        const digests = call.request.digests;
        if (digests.length > MAX_DIGESTS_PER_CALL) {
          throw new FerryError(ErrorCode.InvalidArgument, `asked for ${digests.length} chunks in one call; the limit is ${MAX_DIGESTS_PER_CALL}`);
        }
        for (const digest of digests) {
          if (call.cancelled) return;
          const data = await ctx.bundles.chunks.get(digest);
          if (!call.write({ digest, data })) await new Promise<void>((r) => call.once('drain', () => r()));
        }
        call.end();
      })().catch((err) => {
        if (!(err instanceof FerryError)) ctx.log.error({ err }, 'chunk fetch failed');
        else if (err.code === ErrorCode.ChunkCorrupt || err.code === ErrorCode.ChunkDigestMismatch) ctx.log.error({ err: err.message }, 'corrupt chunk on the controller disk');
        call.emit('error', toServiceError(err));
      });
    },
  };
}
