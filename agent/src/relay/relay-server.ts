/**
 * The relay's listener: `ferry.v1.Chunks` over mTLS, the same contract the
 * controller serves (docs/relays.md). Its server certificate has the relay
 * role and names this agent (issued by the controller's CA, key made here).
 *
 * Who may call: TLS requires a client certificate chained to the fleet CA;
 * each call then needs the agent role (OU) and an agent id the controller
 * has not revoked (the list comes with the relay role over the session and
 * is replaced on every change). An operator or another relay certificate is
 * refused.
 */
import { X509Certificate } from 'node:crypto';
import { Server, ServerCredentials, status as GrpcStatus, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import { networkInterfaces } from 'node:os';
import { streamChunks, MAX_DIGESTS_PER_CALL, recheckAll } from '../../../common/src/bundle/chunk-stream.js';
import { preferFerryCiphers } from '../../../common/src/tls-ciphers.js';
import { isSha256Hex } from '../../../common/src/bundle/digest.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { ChunksServer, FetchChunksRequest, RecheckChunksRequest, RecheckChunksResponse, ResolveHttpRequest, ResolveHttpResponse } from '../../../common/src/gen/ferry/v1/chunks.js';
import type { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { FastChunksService, frameChunksInPlace } from '../../../common/src/grpc-chunks.js';
import { serverOptions } from '../../../common/src/grpc-options.js';
import { toServiceError } from '../../../common/src/grpc-status.js';
import type { Logger } from '../../../common/src/log.js';
import { certIdentity } from '../../../common/src/pki.js';
import type { RelayCache } from './relay-cache.js';

/** What the server needs to run. */
export interface RelayServerOptions {
  listen: string;
  /** Address to report (empty: the listen host, or this host's first IPv4 for a wildcard, with the bound port). */
  advertise: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  cache: RelayCache;
  /** Agent ids to refuse (revoked). */
  revoked: () => ReadonlySet<string>;
  log: Logger;
}

/** See module comment. */
export class RelayServer {
  private constructor(private readonly server: Server, readonly address: string) {}

  static async start(o: RelayServerOptions): Promise<RelayServer> {
    frameChunksInPlace();
    preferFerryCiphers();
    const server = new Server(serverOptions());
    server.addService(FastChunksService, chunksHandlers(o));
    const creds = ServerCredentials.createSsl(Buffer.from(o.caPem), [{ cert_chain: Buffer.from(o.certPem), private_key: Buffer.from(o.keyPem) }], true);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(o.listen, creds, (e, p) => (e ? reject(e) : resolve(p))))
      .catch((e: Error) => {
        server.forceShutdown();
        throw new FerryError(ErrorCode.Config, `the relay cannot listen on ${o.listen}: ${e.message}`,
          'pick a free address with `ferry relay enable HOST --listen HOST:PORT`');
      });
    return new RelayServer(server, o.advertise || `${advertisedHost(o.listen)}:${port}`);
  }

  /** Stops at once: calls in flight end with UNAVAILABLE and their agents fall back by themselves. */
  stop(): void {
    this.server.forceShutdown();
  }
}

function advertisedHost(listen: string): string {
  const host = listen.replace(/:\d+$/, '');
  if (host !== '0.0.0.0' && host !== '[::]' && host !== '::') return host;
  const ip = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4');
  return ip?.address ?? '127.0.0.1';
}

/** The caller's agent id, or a FerryError saying why it may not call. */
function callerOf(call: { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } }, o: RelayServerOptions): string {
  const raw = call.getAuthContext().sslPeerCertificate?.raw;
  if (!raw) throw new FerryError(ErrorCode.Unauthenticated, 'no valid fleet client certificate', 'only enrolled agents may fetch chunks from a relay');
  const cert = new X509Certificate(raw);
  const { cn, role } = certIdentity(cert);
  if (role !== 'agent') throw new FerryError(ErrorCode.PermissionDenied, `a ${role || 'unknown'} certificate cannot fetch chunks from a relay`);
  if (o.revoked().has(cn)) throw new FerryError(ErrorCode.AgentRevoked, `agent ${cn} was revoked; this relay refuses it`);
  return cn;
}

/**
 * Fetch and Recheck, and ResolveHttp refused with a reason (relays ask the
 * controller, never each other). Sketch and FetchRanges (sub-chunk delta
 * fetch) are left out, so grpc-js answers them UNIMPLEMENTED and agents fetch whole
 * chunks from the relay, which is what a site relay is for (one copy over
 * the uplink, then LAN speed).
 */
function chunksHandlers(o: RelayServerOptions): Pick<ChunksServer, 'fetch' | 'recheck' | 'resolveHttp'> {
  return {
    fetch: (call: ServerWritableStream<FetchChunksRequest, ChunkData>) => {
      void (async () => {
        const agent = callerOf(call, o);
        const digests = call.request.digests;
        if (digests.length > MAX_DIGESTS_PER_CALL) {
          throw new FerryError(ErrorCode.InvalidArgument, `asked for ${digests.length} chunks in one call; the limit is ${MAX_DIGESTS_PER_CALL}`);
        }
        const bad = digests.find((d) => !isSha256Hex(d));
        if (bad !== undefined) throw new FerryError(ErrorCode.InvalidArgument, `"${String(bad).slice(0, 80)}" is not a chunk digest (64 lowercase hex digits)`);
        const ready = o.cache.prepare(digests);
        let i = 0;
        await streamChunks(call as ServerWritableStream<unknown, unknown>, digests, { read: (d) => o.cache.read(d, ready[i++]!), pool: o.cache.pool, budget: o.cache.budget });
        o.log.debug?.({ agent, chunks: digests.length }, 'relay served chunks');
      })().then(() => call.end(), (e: unknown) => {
        const fe = e instanceof FerryError ? e : new FerryError(ErrorCode.Internal, String(e));
        if (!call.cancelled) call.emit('error', toServiceError(fe));
      });
    },
    recheck: (call: ServerUnaryCall<RecheckChunksRequest, RecheckChunksResponse>, cb: sendUnaryData<RecheckChunksResponse>) => {
      try {
        callerOf(call, o);
      } catch (e) {
        cb(toServiceError(e) as never);
        return;
      }
      recheckAll(o.cache, call.request.digests).then((dropped) => cb(null, { dropped }), (e: unknown) => cb({ code: GrpcStatus.INTERNAL, details: String(e) } as never));
    },
    // Registry requests are resolved by the controller alone (relay-registry.ts); a relay never answers them for another.
    resolveHttp: (_call: ServerUnaryCall<ResolveHttpRequest, ResolveHttpResponse>, cb: sendUnaryData<ResolveHttpResponse>) => {
      cb({ code: GrpcStatus.UNIMPLEMENTED, details: 'a relay does not resolve registry requests; ask the controller' } as never);
    },
  };
}
