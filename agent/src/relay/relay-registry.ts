/**
 * A relay's registry (/v2) and files (/files) endpoints for its site's
 * runtimes: containerd, skopeo, curl (docs/relays.md, "Registry and files on
 * a relay"). The HTTPS front is the controller's (common/src/registry/
 * listener.ts) with the relay's certificate; every request is then
 * answered in two parts:
 *
 * - what to answer (status, headers, small bodies such as manifests, tag
 *   lists, listings and errors, and who may pull) is asked of the
 *   controller (Chunks.ResolveHttp), which runs the request through its own
 *   handlers, so names, `ns`, anonymous publications, ranges and
 *   conditional requests are decided in one place and cannot drift;
 * - blob and file bodies are cut from the relay's chunk cache, the same
 *   cache that serves Chunks.Fetch: a chunk crosses the site's uplink once
 *   for bundle delivery and pulls together. Every chunk is hashed before it
 *   is sent (RelayCache.readVerified), and one that cannot be had is a 502
 *   JSON error before the first byte, an aborted connection after it: never
 *   a short or wrong body taken for a whole one.
 *
 * Revoked agents are refused here at once from the list the controller
 * sends with the relay role, as Chunks.Fetch does; the controller checks
 * the client again (it also knows operators).
 */
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { MAX_DIGESTS_PER_CALL } from '../../../common/src/bundle/chunk-stream.js';
import { asFerryError } from '../../../common/src/errors.js';
import type { ChunkSpan, ResolveHttpRequest, ResolveHttpResponse } from '../../../common/src/gen/ferry/v1/chunks.js';
import type { Logger } from '../../../common/src/log.js';
import { certIdentity } from '../../../common/src/pki.js';
import { RegistryError } from '../../../common/src/registry/http-error.js';
import { sendChunkBody } from '../../../common/src/registry/chunk-body.js';
import { RegistryListener, RESOLVE_HEADERS, verifiedPeerCert, type FrontRequest } from '../../../common/src/registry/listener.js';
import type { RelayCache } from './relay-cache.js';

/** Chunks asked of the cache ahead of the one being sent: upstream fetching overlaps sending. */
const AHEAD = Math.min(16, MAX_DIGESTS_PER_CALL);

/** What the listener needs. */
export interface RelayRegistryOptions {
  listen: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  cache: RelayCache;
  /** Chunks.ResolveHttp on the controller. */
  resolve: (req: ResolveHttpRequest) => Promise<ResolveHttpResponse>;
  /** Agent ids to refuse (revoked). */
  revoked: () => ReadonlySet<string>;
  log: Logger;
}

/** Counters of the registry endpoints (tests, logs); chunk bytes are counted by the cache. */
export interface RelayRegistryStats {
  requests: number;
  refused: number;
}

/** See module comment. */
export class RelayRegistryServer {
  readonly stats: RelayRegistryStats = { requests: 0, refused: 0 };
  private listener!: RegistryListener;

  private constructor(private readonly o: RelayRegistryOptions) {}

  /** Listens on `o.listen` (port 0 picks one). */
  static async start(o: RelayRegistryOptions): Promise<RelayRegistryServer> {
    const s = new RelayRegistryServer(o);
    s.listener = await RegistryListener.start({
      addr: o.listen, certChainPem: o.certPem, keyPem: o.keyPem, caPem: o.caPem, log: o.log, addrSetting: '--registry-listen',
      onError: () => { s.stats.refused++; },
      handle: (req, res, front) => s.handle(req, res, front),
    });
    return s;
  }

  get port(): number {
    return this.listener.port;
  }

  async stop(): Promise<void> {
    await this.listener.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse, front: FrontRequest): Promise<void> {
    this.stats.requests++;
    const raw = verifiedPeerCert(req.socket as TLSSocket);
    if (raw) {
      const { cn, role } = certIdentity(new X509Certificate(raw));
      if (role === 'agent' && this.o.revoked().has(cn)) throw new RegistryError(403, 'DENIED', `agent ${cn} was revoked; this relay refuses it`);
    }
    const headers: Record<string, string> = {};
    for (const h of RESOLVE_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    let answer: ResolveHttpResponse;
    try {
      answer = await this.o.resolve({ method: req.method ?? 'GET', url: req.url ?? '/', headers, clientCertDer: raw ?? Buffer.alloc(0) });
    } catch (e) {
      const fe = asFerryError(e);
      this.o.log.warn({ url: req.url, err: fe.message }, 'relay registry: the controller could not be asked');
      throw new RegistryError(503, 'UNAVAILABLE', `this relay cannot reach the controller to resolve the request: ${fe.message}`, { 'Retry-After': '5' });
    }
    if (!answer.span) {
      res.writeHead(answer.status, answer.headers);
      res.end(front.head || answer.body.length === 0 ? undefined : answer.body);
      return;
    }
    await this.sendSpan(res, answer, answer.span);
  }

  /**
   * The body from the cache (common/src/registry/chunk-body.ts): chunks are
   * asked of the cache AHEAD at a time, so upstream fetching overlaps
   * sending, and each is hashed before it is sent (RelayCache.readVerified).
   */
  private async sendSpan(res: ServerResponse, answer: ResolveHttpResponse, span: ChunkSpan): Promise<void> {
    const cache = this.o.cache;
    const digests = span.chunks.map((c) => c.digest);
    const ready: Array<Promise<void>> = [];
    const askUpTo = (n: number) => {
      if (ready.length >= n || ready.length >= digests.length) return;
      ready.push(...cache.prepare(digests.slice(ready.length, Math.min(n, digests.length))));
    };
    await sendChunkBody(res, {
      count: digests.length,
      skip: span.skip,
      length: span.length,
      read: (i) => {
        askUpTo(i + AHEAD);
        return cache.readVerified(digests[i]!, ready[i]!);
      },
      pool: cache.pool,
      writeHead: () => res.writeHead(answer.status, answer.headers),
      unavailable: (i, e) => {
        const fe = asFerryError(e);
        this.o.log.error({ chunk: digests[i], err: fe.message }, 'relay registry: a chunk of the body could not be had');
        return new RegistryError(502, 'BLOB_UNAVAILABLE', `chunk ${digests[i]} could not be had from this relay's cache or its upstream: ${fe.message}`);
      },
      // The controller's span was shorter than its Content-Length: never end such a body as if it were whole.
      short: (left) => this.o.log.error({ left }, 'relay registry: the chunk span ended before the body did'),
    });
  }
}
