import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Labels } from '../../../common/src/labels.js';
import type { Db } from './db.js';

/** A join token as stored: the secret exists only as its hash. */
export interface TokenRecord {
  id: string;
  labels: Labels;
  maxUses: number;
  uses: number;
  expiresAt: number;
  createdAt: number;
  revokedAt: number | null;
}

export interface TokenRow {
  id: string;
  secret_hash: string;
  labels: string;
  max_uses: number;
  uses: number;
  expires_at: number;
  created_at: number;
  revoked_at: number | null;
}

// fy1.<id: 10 lowercase base32>.<secret: 43 base64url chars = 32 bytes>
const TOKEN_RE = /^fy1\.([a-z2-7]{10})\.([A-Za-z0-9_-]{43})$/;

function hashSecret(secret: string): string {
  // The secret has 256 bits of entropy, so a plain SHA-256 is enough: there
  // is nothing to brute-force that a slow hash would protect.
  return createHash('sha256').update(secret).digest('hex');
}

function randomId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  return Array.from(randomBytes(10), (b) => alphabet[b & 31]).join('');
}

function fromRow(r: TokenRow): TokenRecord {
  return {
    id: r.id, labels: JSON.parse(r.labels) as Labels, maxUses: r.max_uses, uses: r.uses,
    expiresAt: Number(r.expires_at), createdAt: Number(r.created_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}

const HINT_NEW = 'ask your fleet operator for a new join string (`ferry token create`)';

/** Join tokens: create, list, revoke, and consume one use atomically. */
export class TokenStore {
  constructor(private readonly db: Db) {}

  async create(opts: { ttlMs: number; maxUses: number; labels: Labels }, now = Date.now()): Promise<{ token: string; record: TokenRecord }> {
    const id = randomId();
    const secret = randomBytes(32).toString('base64url');
    await this.db.run(
      'INSERT INTO tokens (id, secret_hash, labels, max_uses, uses, expires_at, created_at) VALUES (?, ?, ?, ?, 0, ?, ?)',
      [id, hashSecret(secret), JSON.stringify(opts.labels), opts.maxUses, now + opts.ttlMs, now],
    );
    const record = (await this.get(id))!;
    return { token: `fy1.${id}.${secret}`, record };
  }

  async get(id: string): Promise<TokenRecord | undefined> {
    const r = await this.db.get<TokenRow>('SELECT * FROM tokens WHERE id = ?', [id]);
    return r && fromRow(r);
  }

  async list(): Promise<TokenRecord[]> {
    return (await this.db.all<TokenRow>('SELECT * FROM tokens ORDER BY created_at')).map(fromRow);
  }

  async revoke(id: string, now = Date.now()): Promise<TokenRecord> {
    const res = await this.db.run('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id]);
    const rec = await this.get(id);
    if (!rec) throw new FerryError(ErrorCode.NotFound, `no token with id ${id}`, 'list tokens with `ferry token ls`');
    if (res.changes === 0 && rec.revokedAt === null) throw new FerryError(ErrorCode.Internal, `token ${id} could not be revoked`);
    return rec;
  }

  /**
   * Checks a presented token and consumes one use. Must run inside the
   * enrollment transaction: the conditional UPDATE is what makes the last use
   * go to exactly one of many concurrent enrollments.
   */
  async consume(db: Db, token: string, now = Date.now()): Promise<TokenRecord> {
    const row = await this.authenticate(db, token);
    const id = row.id;
    if (Number(row.expires_at) <= now) {
      throw new FerryError(ErrorCode.TokenExpired, `token ${id} expired at ${new Date(Number(row.expires_at)).toISOString()}`,
        `${HINT_NEW}; if it should still be valid, check this host's clock`);
    }
    const res = await db.run(
      'UPDATE tokens SET uses = uses + 1 WHERE id = ? AND uses < max_uses AND revoked_at IS NULL AND expires_at > ?',
      [id, now],
    );
    if (res.changes !== 1) {
      throw new FerryError(ErrorCode.TokenExhausted, `token ${id} has been used all ${row.max_uses} times`, HINT_NEW);
    }
    return fromRow({ ...row, uses: row.uses + 1 });
  }

  /**
   * The token's record when the secret matches and it is not revoked; uses
   * and expiry are not checked (a retried enrollment whose first answer was
   * lost spent its use already, perhaps the last, perhaps just before expiry).
   */
  async authenticate(db: Db, token: string): Promise<TokenRow> {
    const m = TOKEN_RE.exec(token.trim());
    if (!m) {
      throw new FerryError(ErrorCode.TokenMalformed, 'the token is malformed (expected fy1.<id>.<secret>)',
        'paste the whole join string exactly as printed; it may have been cut or mangled in transit');
    }
    const [, id, secret] = m as unknown as [string, string, string];
    const row = await db.get<TokenRow>('SELECT * FROM tokens WHERE id = ?', [id]);
    const presented = Buffer.from(hashSecret(secret), 'hex');
    if (!row || !timingSafeEqual(presented, Buffer.from(row.secret_hash, 'hex'))) {
      throw new FerryError(ErrorCode.TokenUnknown, 'the controller does not know this token', HINT_NEW);
    }
    if (row.revoked_at !== null) {
      throw new FerryError(ErrorCode.TokenRevoked, `token ${id} was revoked`, HINT_NEW);
    }
    return row;
  }
}
