import { listenOn, parseHostPort } from '../../../common/src/host-port.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';

/** One readiness check: undefined when fine, else why not (one line). */
export type ReadinessCheck = () => Promise<string | undefined>;

export interface OpsHttpOptions {
  /** host:port; port 0 picks one (tests). */
  addr: string;
  log: Logger;
  /** The Prometheus exposition for GET /metrics. */
  scrape: () => Promise<{ contentType: string; body: string }>;
  /** Named checks for GET /readyz; all must pass. */
  ready: Record<string, ReadinessCheck>;
}

/** A check that takes longer than this fails: a probe must answer within a load balancer's timeout. */
const CHECK_TIMEOUT_MS = 2_000;

async function runCheck(check: ReadinessCheck): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS); });
  try {
    return await Promise.race([check().catch((err: Error) => err.message || String(err)), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The controller's plain-HTTP operations listener, beside gRPC (whose
 * grpc.health.v1 service stays): GET /metrics (Prometheus text format),
 * /healthz (200 while the process serves HTTP at all: for restarts by a
 * supervisor) and /readyz (200 only when every readiness check passes: for
 * load balancers; 503 with the failing checks named, also while the
 * controller drains). No authentication: it carries counts, never secrets,
 * and listens on loopback unless the operator says otherwise (config.ts).
 */
export class OpsHttp {
  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(o: OpsHttpOptions): Promise<OpsHttp> {
    const server = createServer((req, res) => void handle(o, req, res).catch((err: Error) => {
      o.log.error({ err, path: req.url }, 'operations HTTP request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('internal error\n');
    }));
    // Probes and scrapes are short; idle keep-alive connections must not hold stop() up.
    server.keepAliveTimeout = 5_000;
    const port = await listenOn(server, parseHostPort(o.addr)!, (err) => new FerryError(ErrorCode.Config, `cannot listen for metrics and health checks on ${o.addr}: ${err.message}`,
      'pick a free address with --http-addr (host:port), or turn the listener off with --http-addr off'));
    return new OpsHttp(server, port);
  }

  /** Stops listening and closes every connection (idle or not). */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

async function handle(o: OpsHttpOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const text = (code: number, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'only GET and HEAD\n', { allow: 'GET, HEAD' });
  switch (path) {
    case '/metrics': {
      const { contentType, body } = await o.scrape();
      return text(200, body, { 'content-type': contentType });
    }
    case '/healthz':
      return text(200, 'ok\n');
    case '/readyz': {
      const names = Object.keys(o.ready);
      const results = await Promise.all(names.map((n) => runCheck(o.ready[n]!)));
      const lines = names.map((n, i) => (results[i] === undefined ? `ok ${n}` : `failed ${n}: ${results[i]}`));
      const ok = results.every((r) => r === undefined);
      return text(ok ? 200 : 503, `${lines.join('\n')}\n${ok ? 'ready' : 'not ready'}\n`);
    }
    default:
      return text(404, `no ${path} here; try /metrics, /healthz or /readyz\n`);
  }
}
