import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { ChunksServer, FetchChunksRequest, FetchRangesRequest, SketchChunksRequest } from '../../../common/src/gen/ferry/v1/chunks.js';
import type { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { CallBoundary } from './call-boundary.js';
import type { ChunkMetrics } from '../metrics/metrics.js';
import type { ControllerContext } from './context.js';
import { MAX_DIGESTS_PER_CALL, recheckAll, streamChunks } from '../../../common/src/bundle/chunk-stream.js';
import { SketchServer } from '../../../common/src/bundle/sketch.js';
import { authenticatePeer, type CallWithAuth, type Peer } from './peer-auth.js';
import type { ResolveHttpRequest, ResolveHttpResponse } from '../../../common/src/gen/ferry/v1/chunks.js';
import { HttpResolver } from '../registry/resolve-http.js';
import { OperatorStore } from '../store/operators.js';

/** Parsed client certificates remembered (an agent makes a call per batch, each re-presenting the same certificate). */
const MAX_CACHED_PEERS = 4096;

/**
 * Chunks.Fetch: streams chunk bytes to enrolled agents. Chunks are read
 * straight into their wire messages and hashed once per controller process
 * (see bundles/served-chunks.ts): a chunk that no longer matches its digest
 * ends the call with DATA_LOSS and is dropped. The write loop with its
 * backpressure is common/src/bundle/chunk-stream.ts, shared with site relays.
 */
export function chunksService(ctx: ControllerContext): ChunksServer {
  const authenticate = peerCache(ctx);
  // One pool for every call (and the registry): a call per file means many short-lived calls, each of which would otherwise start with no buffers.
  const pool = ctx.bundles.served.pool;
  const metrics: ChunkMetrics = ctx.metrics;
  let resolver: HttpResolver | undefined;
  const boundary = new CallBoundary({ api: 'chunks', log: ctx.log, metrics: ctx.metrics, caller: (call) => `agent:${authenticate(call).id}` });
  // Looked up per call (not cached) so a revoked agent is refused at its next batch.
  const admitted = async (who: string): Promise<string> => {
    const agentId = who.slice('agent:'.length);
    const agent = await ctx.agents.get(agentId);
    if (!agent || agent.revokedAt !== null) throw new FerryError(ErrorCode.AgentRevoked, `agent ${agentId} may not fetch chunks`);
    return agentId;
  };
  // Sub-chunk delta fetch reads through the same verifying reader as Fetch: a corrupt chunk is dropped and ends the call with DATA_LOSS.
  const sketches = new SketchServer(async (d) => (await ctx.bundles.served.read(d)).data);
  const logCorrupt = (agentId: string, err: unknown) => {
    if (err instanceof FerryError && (err.code === ErrorCode.ChunkCorrupt || err.code === ErrorCode.ChunkDigestMismatch)) {
      ctx.log.error({ agent: agentId, err: err.message }, 'corrupt chunk on the controller disk');
    }
  };
  return {
    fetch: boundary.serverStream<FetchChunksRequest, ChunkData>(async (call, { who }) => {
      const agentId = await admitted(who);
      const digests = call.request.digests;
      if (digests.length > MAX_DIGESTS_PER_CALL) {
        throw new FerryError(ErrorCode.InvalidArgument, `asked for ${digests.length} chunks in one call; the limit is ${MAX_DIGESTS_PER_CALL}`);
      }
      try {
        await streamChunks(call, digests, { read: (d) => ctx.bundles.served.read(d, pool), pool, budget: ctx.bundles.served.budget, onServed: (n) => metrics.chunkServed(n) });
      } catch (err) {
        logCorrupt(agentId, err);
        throw err;
      }
    }),
    sketch: boundary.unary<SketchChunksRequest, { version: number; sketches: Array<{ digest: string; lengths: number[]; hashes: Buffer }> }>(async (req, who) => {
      const agentId = await admitted(who);
      return sketches.sketches(req.digests).catch((err: unknown) => { logCorrupt(agentId, err); throw err; });
    }),
    fetchRanges: boundary.unary<FetchRangesRequest, { data: Buffer }>(async (req, who) => {
      const agentId = await admitted(who);
      const data = await sketches.ranges(req.digest, req.ranges).catch((err: unknown) => { logCorrupt(agentId, err); throw err; });
      metrics.chunkServed(data.length);
      return { data };
    }),
    // A client got bytes that did not match (normally from a relay; here from this controller's disk): hash our copies again.
    recheck: boundary.unary(async (req) => ({ dropped: await recheckAll(ctx.bundles.served, req.digests) })),
    // A site relay's registry/files request (registry/resolve-http.ts): only an enabled, unrevoked relay may ask.
    resolveHttp: boundary.unary<ResolveHttpRequest, ResolveHttpResponse>(async (req, who) => {
      const agentId = who.slice('agent:'.length);
      const agent = await ctx.agents.get(agentId);
      if (!agent || agent.revokedAt !== null) throw new FerryError(ErrorCode.AgentRevoked, `agent ${agentId} may not resolve registry requests`);
      if (!(await ctx.relays.store.get(agentId))) {
        throw new FerryError(ErrorCode.PermissionDenied, `agent ${agentId} is not an enabled relay; only relays pass on registry and files requests`,
          'enable it with `ferry relay enable HOST --registry-listen HOST:PORT`');
      }
      resolver ??= new HttpResolver({ ca: ctx.ca, agents: ctx.agents, operators: new OperatorStore(ctx.db), bundles: ctx.bundles, store: ctx.registry, log: ctx.log.child({ part: 'registry' }) });
      return resolver.resolve(req, agentId);
    }),
  };
}

/**
 * authenticatePeer, remembered per certificate: parsing the X.509
 * certificate and checking it against the CA on every call showed in the
 * profile. The same DER bytes always give the same answer (the TLS layer
 * still checks validity dates on every connection).
 */
function peerCache(ctx: ControllerContext): (call: CallWithAuth) => Peer {
  const peers = new Map<string, Peer>();
  return (call) => {
    const raw = call.getAuthContext().sslPeerCertificate?.raw;
    const key = raw?.toString('base64');
    const hit = key === undefined ? undefined : peers.get(key);
    if (hit) return { ...hit, address: call.getPeer() };
    const peer = authenticatePeer(call, ctx.ca, 'agent');
    if (peers.size >= MAX_CACHED_PEERS) peers.clear();
    if (key !== undefined) peers.set(key, peer);
    return peer;
  };
}
