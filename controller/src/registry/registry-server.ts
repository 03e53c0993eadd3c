import { listenOn, parseHostPort } from '../../../common/src/host-port.js';
import { NO_METRICS, type RegistryMetrics } from '../metrics/metrics.js';
/**
 * The controller's HTTPS listener for the registry (/v2) and the files
 * repository (/files): TLS with the controller's server certificate, client
 * certificates requested and checked against the fleet CA per request
 * (client-auth.ts), one small router, and one error path that always
 * answers JSON (docs/registry.md).
 *
 * HTTP/1.1 only, on purpose: skopeo 1.9 and containerd 1.6 speak nothing
 * else, and node:http2 (tried, with allowHTTP1) cost curl more CPU and
 * throughput than HTTP/1.1 (bench-results/registry.md).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { CertificateAuthority } from '../pki/ca.js';
import type { AgentStore } from '../store/agents.js';
import type { OperatorStore } from '../store/operators.js';
import { BundleBytes } from './bundle-bytes.js';
import { ClientAuth } from './client-auth.js';
import { handleFiles } from './files-repo.js';
import { rawError, RegistryError, sendError } from './http-error.js';
import { handleV2 } from './pull-api.js';
import type { RegistryDeps, RegistryRequest } from './request.js';
import type { RegistryStore } from './registry-store.js';

/** Largest request head accepted (bytes); more is a JSON 431. */
export const MAX_HEADER_BYTES = 16 * 1024;

/** What the listener needs from the controller. */
export interface RegistryServerOptions {
  addr: string;
  certChainPem: string;
  keyPem: string;
  ca: CertificateAuthority;
  agents: AgentStore;
  operators: OperatorStore;
  bundles: BundleStore;
  store: RegistryStore;
  log: Logger;
  /** Where pulls and refusals are counted: the controller's /metrics (`ferry_registry_*`), the one record of them. */
  metrics?: RegistryMetrics;
}

/** See module comment. */
export class RegistryServer {
  private readonly deps: RegistryDeps;
  private readonly auth: ClientAuth;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, opts: RegistryServerOptions, readonly port: number) {
    this.deps = { store: opts.store, bytes: new BundleBytes(opts.bundles, opts.log), metrics: opts.metrics ?? NO_METRICS, log: opts.log };
    this.auth = new ClientAuth(opts.ca, opts.agents, opts.operators);
  }

  /** Listens on `opts.addr` (port 0 picks one). */
  static async start(opts: RegistryServerOptions): Promise<RegistryServer> {
    const server = createServer({
      cert: opts.certChainPem, key: opts.keyPem, ca: [opts.ca.certPem],
      requestCert: true, rejectUnauthorized: false, maxHeaderSize: MAX_HEADER_BYTES, minVersion: 'TLSv1.2',
    });
    const port = await listenOn(server, parseHostPort(opts.addr)!, (err) => new FerryError(ErrorCode.Config, `cannot listen on registry-addr ${opts.addr}: ${err.message}`,
      'pick a free port with --registry-addr, or stop whatever holds this one'));
    const rs = new RegistryServer(server, opts, port);
    server.on('connection', (s: Socket) => {
      rs.sockets.add(s);
      s.once('close', () => rs.sockets.delete(s));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void rs.handle(req, res));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      rs.deps.metrics.registryError(tooLarge ? 'HEADERS_TOO_LARGE' : 'BAD_REQUEST');
      socket.end(tooLarge
        ? rawError(431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', `request headers exceed ${MAX_HEADER_BYTES} bytes`)
        : rawError(400, 'Bad Request', 'BAD_REQUEST', `malformed HTTP request (${err.code ?? err.message})`));
    });
    return rs;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const head = req.method === 'HEAD';
    try {
      const url = req.url ?? '/';
      if (url.length > 8192) throw new RegistryError(414, 'BAD_REQUEST', 'request URL too long');
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      if (path.includes('\0') || /%00/.test(path)) throw new RegistryError(400, 'PATH_INVALID', 'NUL in the request path');
      if (req.method !== 'GET' && !head) {
        throw new RegistryError(405, 'UNSUPPORTED', `${req.method} is not supported: Ferry's registry is pull-only; publish with \`ferry registry publish\``, { Allow: 'GET, HEAD' });
      }
      const route = path === '/v2' || path.startsWith('/v2/') ? handleV2 : path === '/files' || path.startsWith('/files/') ? handleFiles : undefined;
      if (!route) throw new RegistryError(404, 'NOT_FOUND', `nothing at ${path.slice(0, 200)}: the registry is under /v2/, files under /files/`);
      const client = await this.auth.identify(req.socket as TLSSocket);
      const r: RegistryRequest = { req, res, path, query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), head, host: req.headers.host, client };
      await route(r, this.deps);
    } catch (err) {
      const e = err instanceof RegistryError ? err : new RegistryError(500, 'INTERNAL', 'internal error; the controller log has the details');
      if (!(err instanceof RegistryError)) this.deps.log.error({ err, url: req.url }, 'registry: request failed');
      this.deps.metrics.registryError(e.code);
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
