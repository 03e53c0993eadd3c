/**
 * The HTTPS front of the registry (/v2) and files repository (/files), one
 * implementation for the controller and for site relays: TLS that asks for
 * a fleet client certificate but accepts any (so that a refusal is a JSON
 * 401/403 a client can show, not a handshake failure), limits on the head
 * and URL, the method and route checks every request passes first, and one
 * error path that always answers JSON (docs/registry.md). What is served
 * (the store on the controller, the chunk cache on a relay) is the
 * caller's `handle`.
 *
 * HTTP/1.1 only, on purpose: skopeo 1.9 and containerd 1.6 speak nothing
 * else, and node:http2 (tried, with allowHTTP1) cost curl more CPU and
 * throughput than HTTP/1.1 (bench-results/registry.md).
 */
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, FerryError } from '../errors.js';
import { listenOn, parseHostPort } from '../host-port.js';
import type { Logger } from '../log.js';
import { certIdentity } from '../pki.js';
import { preferFerryCiphers } from '../tls-ciphers.js';
import { rawError, RegistryError, sendError, type RegistryCode } from './http-error.js';

/** Largest request head accepted (bytes); more is a JSON 431. */
export const MAX_HEADER_BYTES = 16 * 1024;

/** Request headers a site relay passes on to the controller (Chunks.ResolveHttp): the ones any handler reads. */
export const RESOLVE_HEADERS = ['host', 'range', 'accept', 'if-none-match', 'if-modified-since', 'if-range'] as const;

/** A request that passed the front checks. */
export interface FrontRequest {
  /** The path as sent, without the query. */
  path: string;
  query: URLSearchParams;
  head: boolean;
  route: 'v2' | 'files';
}

/** What {@link RegistryListener.start} needs. */
export interface RegistryListenerOptions {
  addr: string;
  certChainPem: string;
  keyPem: string;
  caPem: string;
  log: Logger;
  /** Says which setting to change when the address is taken (`--registry-addr`, `--registry-listen`). */
  addrSetting: string;
  /** Serves one request; throws RegistryError for a refusal (anything else is a 500 INTERNAL, logged). */
  handle: (req: IncomingMessage, res: ServerResponse, front: FrontRequest) => Promise<void>;
  /** Counts every refusal by its code. */
  onError?: (code: RegistryCode) => void;
}

/** See module comment. */
export class RegistryListener {
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, private readonly o: RegistryListenerOptions, readonly port: number) {}

  /** Listens on `o.addr` (port 0 picks one). */
  static async start(o: RegistryListenerOptions): Promise<RegistryListener> {
    preferFerryCiphers();
    const server = createServer({
      cert: o.certChainPem, key: o.keyPem, ca: [o.caPem],
      requestCert: true, rejectUnauthorized: false, maxHeaderSize: MAX_HEADER_BYTES, minVersion: 'TLSv1.2',
    });
    const addr = parseHostPort(o.addr);
    if (!addr) throw new FerryError(ErrorCode.Config, `${o.addrSetting} ${o.addr} is not HOST:PORT`);
    const port = await listenOn(server, addr, (err) => new FerryError(ErrorCode.Config, `cannot listen on ${o.addrSetting} ${o.addr}: ${err.message}`,
      `pick a free port with ${o.addrSetting}, or stop whatever holds this one`));
    const l = new RegistryListener(server, o, port);
    server.on('connection', (s: Socket) => {
      l.sockets.add(s);
      s.once('close', () => l.sockets.delete(s));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void l.serve(req, res));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      o.onError?.(tooLarge ? 'HEADERS_TOO_LARGE' : 'BAD_REQUEST');
      socket.end(tooLarge
        ? rawError(431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', `request headers exceed ${MAX_HEADER_BYTES} bytes`)
        : rawError(400, 'Bad Request', 'BAD_REQUEST', `malformed HTTP request (${err.code ?? err.message})`));
    });
    return l;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const head = req.method === 'HEAD';
    try {
      await this.o.handle(req, res, frontCheck(req.method, req.url));
    } catch (err) {
      const e = err instanceof RegistryError ? err : new RegistryError(500, 'INTERNAL', 'internal error; the server log has the details');
      if (!(err instanceof RegistryError)) this.o.log.error({ err, url: req.url }, 'registry: request failed');
      this.o.onError?.(e.code);
      if (res.headersSent) res.destroy();
      else sendError(res, e, head);
    }
  }

  /** Stops listening and closes open connections. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

/** URL length, NUL, method and route: what every request must pass before anyone looks it up. */
export function frontCheck(method: string | undefined, rawUrl: string | undefined): FrontRequest {
  const url = rawUrl ?? '/';
  if (url.length > 8192) throw new RegistryError(414, 'BAD_REQUEST', 'request URL too long');
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (path.includes('\0') || /%00/.test(path)) throw new RegistryError(400, 'PATH_INVALID', 'NUL in the request path');
  const head = method === 'HEAD';
  if (method !== 'GET' && !head) {
    throw new RegistryError(405, 'UNSUPPORTED', `${method} is not supported: Ferry's registry is pull-only; publish with \`ferry registry publish\``, { Allow: 'GET, HEAD' });
  }
  const route = path === '/v2' || path.startsWith('/v2/') ? 'v2' : path === '/files' || path.startsWith('/files/') ? 'files' : undefined;
  if (!route) throw new RegistryError(404, 'NOT_FOUND', `nothing at ${path.slice(0, 200)}: the registry is under /v2/, files under /files/`);
  return { path, query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), head, route };
}

/**
 * The client certificate's DER bytes once TLS verified it against the fleet
 * CA, or undefined when none was presented. A certificate TLS did not
 * verify (expired, another CA) is a 401 naming why; what it claims is only
 * used for the message. Who it names, and whether they may pull, is the
 * caller's question.
 */
export function verifiedPeerCert(socket: TLSSocket): Buffer | undefined {
  const peer = socket.getPeerCertificate(false);
  if (!peer || !peer.raw) return undefined;
  if (!socket.authorized) {
    const cert = new X509Certificate(peer.raw);
    const claimed = certIdentity(cert).cn || '(no name)';
    const why = String((socket.authorizationError as { code?: string } | null)?.code ?? socket.authorizationError ?? 'not verified');
    const detail = why === 'CERT_HAS_EXPIRED' ? `expired at ${new Date(cert.validTo).toISOString()}` : `not issued by this fleet's CA (${why})`;
    throw new RegistryError(401, 'UNAUTHORIZED', `client certificate of ${claimed} refused: ${detail}; present an agent or operator certificate of this fleet`);
  }
  return peer.raw;
}
