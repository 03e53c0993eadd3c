import { NO_METRICS, type RegistryMetrics } from '../metrics/metrics.js';
/**
 * The controller's HTTPS listener for the registry (/v2) and the files
 * repository (/files): the shared front (common/src/registry/listener.ts:
 * TLS, limits, routes, JSON errors) with the controller's server
 * certificate, the client checked per request (client-auth.ts), and the
 * handlers reading the store and the chunk store (docs/registry.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { RegistryListener } from '../../../common/src/registry/listener.js';
import { BundleBytes } from './bundle-bytes.js';
import { ClientAuth } from './client-auth.js';
import { handleFiles } from './files-repo.js';
import { handleV2 } from './pull-api.js';
import type { RegistryDeps, RegistryRequest } from './request.js';
import type { HttpResolverOptions } from './resolve-http.js';

export { MAX_HEADER_BYTES } from '../../../common/src/registry/listener.js';

/** What the listener needs from the controller. */
export interface RegistryServerOptions extends HttpResolverOptions {
  addr: string;
  certChainPem: string;
  keyPem: string;
  /** Where pulls and refusals are counted: the controller's /metrics (`ferry_registry_*`), the one record of them. */
  metrics?: RegistryMetrics;
}

/** See module comment. */
export class RegistryServer {
  private constructor(private readonly listener: RegistryListener) {}

  /** The port it listens on. */
  get port(): number {
    return this.listener.port;
  }

  /** Listens on `opts.addr` (port 0 picks one). */
  static async start(opts: RegistryServerOptions): Promise<RegistryServer> {
    const deps: RegistryDeps = { store: opts.store, bytes: new BundleBytes(opts.bundles, opts.log), metrics: opts.metrics ?? NO_METRICS, log: opts.log };
    const auth = new ClientAuth(opts.ca, opts.agents, opts.operators);
    const listener = await RegistryListener.start({
      addr: opts.addr, certChainPem: opts.certChainPem, keyPem: opts.keyPem, caPem: opts.ca.certPem, log: opts.log, addrSetting: '--registry-addr',
      onError: (code) => deps.metrics.registryError(code),
      handle: async (req: IncomingMessage, res: ServerResponse, front) => {
        const client = await auth.identify(req.socket as TLSSocket);
        const r: RegistryRequest = {
          headers: req.headers, res, path: front.path, query: front.query, head: front.head, host: req.headers.host, client,
          sendRange: (bundleId, f, start, end, writeHead) => deps.bytes.send(res, bundleId, f, start, end, writeHead),
        };
        await (front.route === 'v2' ? handleV2 : handleFiles)(r, deps);
      },
    });
    return new RegistryServer(listener);
  }

  /** Stops listening and closes open connections. */
  async stop(): Promise<void> {
    await this.listener.stop();
  }
}
