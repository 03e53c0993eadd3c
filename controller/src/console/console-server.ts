import { listenOn, parseHostPort } from '../../../common/src/host-port.js';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { asFerryError, ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import type { ControllerContext } from '../services/context.js';
import { BrowserAuth, CSRF_HEADER, SESSION_COOKIE, sameSecret, type Browser } from './console-auth-http.js';
import { ConsoleApi } from './console-api.js';
import { consoleRoutes } from './console-routes.js';
import { bare, html } from './html.js';

/** What the console needs besides the controller's context. */
export interface ConsoleOptions {
  /** host:port to listen on (port 0 picks one). */
  addr: string;
  /** The controller's server certificate chain and key (names in its SANs are the names browsers may use). */
  certPem: string;
  keyPem: string;
  sessionTtlMs: number;
  log: Logger;
}

/** HTTP status for each refusal a page or action can meet. */
const STATUS: Partial<Record<string, number>> = {
  [ErrorCode.Unauthenticated]: 401, [ErrorCode.PermissionDenied]: 403, [ErrorCode.NotFound]: 404,
  [ErrorCode.InvalidArgument]: 409, [ErrorCode.Config]: 409,
};

/** The console's static files (controller/console-static), found from this file in the source tree or in build/. */
function loadStatic(): Map<string, { type: string; body: Buffer }> {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  const root = join(dir, 'controller', 'console-static');
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const [name, type] of [['console.js', 'text/javascript'], ['console.css', 'text/css']] as const) {
    files.set(`/static/${name}`, { type: `${type}; charset=utf-8`, body: readFileSync(join(root, name)) });
  }
  return files;
}

/** Headers on every answer: nothing cached, nothing framed, no script or style from anywhere else, no referrer (links carry secrets). */
function secure(res: ServerResponse): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Security-Policy', "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Strict-Transport-Security', 'max-age=31536000');
}

/**
 * The web console: its own HTTPS listener, for people. Pages are rendered
 * here from the Admin and Rollouts handlers (console-api.ts); a rollout
 * page stays live over server-sent events fed by the Rollouts Watch stream.
 * A browser proves who it is with the session cookie from a login link
 * (`ferry operator login`) or an operator certificate; every action also
 * needs the session's CSRF token in a header and the admin role.
 */
export class ConsoleServer {
  private readonly streams = new Set<ServerResponse>();

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(ctx: ControllerContext, o: ConsoleOptions): Promise<ConsoleServer> {
    const auth = new BrowserAuth(ctx.db, ctx.ca);
    const api = new ConsoleApi(ctx);
    const files = loadStatic();
    const log = o.log;
    let console_: ConsoleServer | undefined;
    const routes = consoleRoutes(api, {
      sessionTtlMs: o.sessionTtlMs, track: (res) => console_?.track(res), onFleetChange: (fn) => ctx.sessions.onChange(() => fn()),
    });

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      secure(res);
      const url = new URL(req.url ?? '/', 'https://console.invalid');
      const file = req.method === 'GET' ? files.get(url.pathname) : undefined;
      if (file) {
        res.writeHead(200, { 'Content-Type': file.type }).end(file.body);
        return;
      }
      if (req.method === 'GET' && url.pathname === '/login') {
        await routes.login(res, url, auth);
        return;
      }
      let who: Browser | undefined;
      try {
        who = await auth.identify(req);
      } catch (err) {
        log.warn({ err: asFerryError(err).message, peer: req.socket.remoteAddress }, 'console: certificate refused');
      }
      if (!who) {
        const body = bare('Log in', html`<p>This is the Ferry web console. Open a login link to start a session:</p>
<pre>ferry operator login [NAME] --role viewer|admin</pre><p>prints one; it works once, for a few minutes.</p>`);
        res.writeHead(401, { 'Content-Type': 'text/html; charset=utf-8' }).end(body);
        return;
      }
      if (req.method === 'POST') {
        // SameSite=Strict keeps the cookie off other sites' requests; the header token is the second lock.
        const origin = req.headers.origin;
        const token = String(req.headers[CSRF_HEADER] ?? '');
        if ((origin && origin !== console_!.origin(req)) || !token || !sameSecret(token, who.csrf)) {
          log.warn({ operator: who.operator, path: url.pathname, origin }, 'console: action refused: missing or wrong CSRF token');
          res.writeHead(403, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { code: ErrorCode.PermissionDenied, message: 'missing or wrong CSRF token', hint: 'reload the page and try again' } }));
          return;
        }
      }
      await routes.route(req, res, url, who, auth);
    };

    const server = createServer({ cert: o.certPem, key: o.keyPem, ca: ctx.ca.certPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      handle(req, res).catch((err: unknown) => {
        const fe = asFerryError(err);
        const status = STATUS[fe.code] ?? 500;
        if (status === 500 && !(err instanceof FerryError)) log.error({ err, path: req.url }, 'console request failed');
        if (res.headersSent) { res.end(); return; }
        const message = status === 500 && !(err instanceof FerryError) ? 'internal error in the controller; see its log' : fe.message;
        if (req.method === 'POST' || (req.headers.accept ?? '').includes('application/json')) {
          res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { code: fe.code, message, hint: fe.hint ?? null } }));
        } else {
          res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' })
            .end(bare(`${status}`, html`<p class="error">${message}</p>${fe.hint ? html`<p class="note">${fe.hint}</p>` : ''}<p><a href="/fleet">back to the console</a></p>`));
        }
      });
    });
    const addr = parseHostPort(o.addr)!;
    const bound = await listenOn(server, addr, (err) => new FerryError(ErrorCode.Config, `cannot serve the web console on ${o.addr}: ${err.message}`,
      'pick a free port with --console-addr, or stop whatever holds this one'));
    const wildcard = addr.host === '0.0.0.0' || addr.host === '::';
    const name = wildcard ? (ctx.config.sans[0] ?? 'localhost') : addr.host.includes(':') ? `[${addr.host}]` : addr.host;
    console_ = new ConsoleServer(server, `https://${name}:${bound}`);
    log.info({ url: console_.url }, 'web console listening');
    return console_;
  }

  /** The origin a browser on this request sends (scheme + the host it asked for). */
  origin(req: IncomingMessage): string {
    return `https://${req.headers.host ?? ''}`;
  }

  /** Open event streams, ended at stop(). */
  track(res: ServerResponse): void {
    this.streams.add(res);
    res.on('close', () => this.streams.delete(res));
  }

  async stop(): Promise<void> {
    for (const res of this.streams) res.end();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

export { SESSION_COOKIE };
