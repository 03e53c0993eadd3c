import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { CertificateAuthority } from '../pki/ca.js';
import { authenticateCertificate } from '../services/peer-auth.js';
import { OperatorStore } from '../store/operators.js';
import type { Db } from '../store/db.js';
import { ConsoleAuth } from '../store/console-auth.js';
import type { ConsoleCaller } from './invoke.js';

/** The session cookie. `__Host-` makes browsers insist on Secure, Path=/ and no Domain. */
export const SESSION_COOKIE = '__Host-ferry_session';
/** Actions carry the session's CSRF token in this header; a page from another site cannot read it. */
export const CSRF_HEADER = 'x-ferry-csrf';

export interface Browser extends ConsoleCaller {
  csrf: string;
}

function cookie(req: IncomingMessage, name: string): string {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return '';
}

/** Constant-time string equality (CSRF tokens). */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Who a browser request comes from: the session its cookie names, or else
 * an operator certificate the browser presented over TLS (checked against
 * the store like on the gRPC TLS port). Undefined: nobody (log in first).
 */
export class BrowserAuth {
  readonly sessions: ConsoleAuth;
  private readonly operators: OperatorStore;
  /** CSRF tokens of certificate callers are derived from their serial with this per-process key. */
  private readonly certCsrfKey = randomBytes(32);

  constructor(db: Db, private readonly ca: CertificateAuthority) {
    this.sessions = new ConsoleAuth(db);
    this.operators = new OperatorStore(db);
  }

  sessionId(req: IncomingMessage): string {
    return cookie(req, SESSION_COOKIE);
  }

  async identify(req: IncomingMessage): Promise<Browser | undefined> {
    const peer = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
    const sid = this.sessionId(req);
    if (sid) {
      const s = await this.sessions.session(sid, Date.now());
      if (s) {
        return {
          operator: s.operator, role: s.role, csrf: s.csrf, peer,
          recheck: async () => {
            if (!(await this.sessions.session(sid, Date.now()))) {
              throw new FerryError(ErrorCode.Unauthenticated, `the console session of ${s.operator} has ended`, 'log in again with a link from `ferry operator login`');
            }
          },
        };
      }
    }
    const tls = req.socket as TLSSocket;
    const raw = tls.authorized ? tls.getPeerCertificate()?.raw : undefined;
    if (!raw) return undefined;
    const check = async () => this.operators.authorize(authenticateCertificate(raw, this.ca, 'operator', peer));
    const op = await check();
    const csrf = createHmac('sha256', this.certCsrfKey).update(op.serial).digest('base64url');
    return { operator: op.name, role: op.role, csrf, peer, recheck: async () => { await check(); } };
  }
}
