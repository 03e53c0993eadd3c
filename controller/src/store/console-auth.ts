import { createHash, randomBytes } from 'node:crypto';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Db } from './db.js';
import type { OperatorRole } from './operators.js';

/** Default life of a login link: long enough to paste it into a browser, short enough that a leaked one is stale. */
export const LOGIN_TTL_MS = 10 * 60_000;
/** The longest a login link may live. */
export const MAX_LOGIN_TTL_MS = 24 * 3_600_000;

/** A browser session, as the console checks it on every request. */
export interface ConsoleSession {
  operator: string;
  role: OperatorRole;
  /** Sent back by the page in the X-Ferry-CSRF header of every action. */
  csrf: string;
  expiresAt: number;
}

function hash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** 32 random bytes, URL-safe. */
function secret(): string {
  return randomBytes(32).toString('base64url');
}

interface SessionRow { operator: string; role: string; csrf: string; expires_at: number }

/**
 * Login links and browser sessions of the web console. Kept in the store
 * (so a link made through one controller opens on another one on the same
 * store, and a restart logs nobody out) and only as SHA-256 hashes: a copy
 * of the store can neither open a link nor ride a session.
 */
export class ConsoleAuth {
  constructor(private readonly db: Db) {}

  /** A fresh single-use login link secret for `operator` with `role`, valid until the returned expiry. */
  async createLogin(operator: string, role: OperatorRole, createdBy: string, ttlMs: number, now: number): Promise<{ token: string; expiresAt: number }> {
    const token = secret();
    const expiresAt = now + ttlMs;
    // Expired links and sessions are swept as new links are made, which bounds both tables by the issue rate.
    await this.db.run('DELETE FROM console_logins WHERE expires_at <= ?', [now]);
    await this.db.run('DELETE FROM console_sessions WHERE expires_at <= ?', [now]);
    await this.db.run('INSERT INTO console_logins (token_hash, operator, role, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
      [hash(token), operator, role, createdBy, now, expiresAt]);
    return { token, expiresAt };
  }

  /**
   * Spends a login link and opens a session of `sessionTtlMs`. One
   * conditional update marks the link used, so two browsers opening the
   * same link cannot both get a session. Refused with UNAUTHENTICATED and
   * the reason (unknown, used, expired) otherwise.
   */
  async consumeLogin(token: string, sessionTtlMs: number, now: number): Promise<{ sessionId: string; session: ConsoleSession }> {
    const h = hash(token);
    const r = await this.db.run('UPDATE console_logins SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?', [now, h, now]);
    if (r.changes !== 1) {
      const row = await this.db.get<{ used_at: number | null; expires_at: number }>('SELECT used_at, expires_at FROM console_logins WHERE token_hash = ?', [h]);
      const why = !row ? 'is not one this controller issued' : row.used_at !== null ? 'was used already (a link opens one session, once)' : 'has expired';
      throw new FerryError(ErrorCode.Unauthenticated, `this login link ${why}`, 'ask for a new one: `ferry operator login`');
    }
    const login = (await this.db.get<{ operator: string; role: string }>('SELECT operator, role FROM console_logins WHERE token_hash = ?', [h]))!;
    const sessionId = secret();
    const session: ConsoleSession = { operator: login.operator, role: login.role === 'admin' ? 'admin' : 'viewer', csrf: secret(), expiresAt: now + sessionTtlMs };
    await this.db.run('INSERT INTO console_sessions (session_hash, operator, role, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
      [hash(sessionId), session.operator, session.role, session.csrf, now, session.expiresAt]);
    return { sessionId, session };
  }

  /** The live session with this id, or undefined (unknown, expired or logged out). */
  async session(sessionId: string, now: number): Promise<ConsoleSession | undefined> {
    if (!sessionId) return undefined;
    const r = await this.db.get<SessionRow>('SELECT operator, role, csrf, expires_at FROM console_sessions WHERE session_hash = ? AND expires_at > ?', [hash(sessionId), now]);
    return r && { operator: r.operator, role: r.role === 'admin' ? 'admin' : 'viewer', csrf: r.csrf, expiresAt: Number(r.expires_at) };
  }

  /** Ends a session (logout). */
  async endSession(sessionId: string): Promise<void> {
    await this.db.run('DELETE FROM console_sessions WHERE session_hash = ?', [hash(sessionId)]);
  }

  /** Ends every session of an operator (their certificates were revoked). Returns how many. */
  async endSessionsOf(operator: string): Promise<number> {
    return (await this.db.run('DELETE FROM console_sessions WHERE operator = ?', [operator])).changes;
  }
}
