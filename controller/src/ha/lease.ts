import type { Db, Dialect } from '../store/db.js';

/** The database's own clock in ms since the epoch: every replica judges expiry by one clock, whatever its own says. */
export function dbNowSql(dialect: Dialect): string {
  return dialect === 'postgres'
    ? '(CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))'
    : "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))";
}

/** Who holds a lease, under which epoch, until when (database time). */
export interface LeaseRow {
  owner: string;
  epoch: number;
  expiresAt: number;
  acquiredAt: number;
  /** The database's time when this was read. */
  now: number;
}

export interface LeaseOptions {
  db: Db;
  /** The lease row (migration 13 creates 'scheduler'). */
  name: string;
  /** This process: unique per run, so a restarted replica is a new holder with a new epoch. */
  owner: string;
  ttlMs: number;
  /**
   * Time for the lease's expiry, if not the database's clock (tests pass
   * their manual clock; every replica in a test shares it).
   */
  now?: () => number;
  /**
   * Take the lease even before it expires: SQLite, where the data
   * directory's lock already makes this process the only one, and a row left
   * by a crashed predecessor must not delay scheduling by a lease time.
   */
  exclusive?: boolean;
}

/**
 * A lease row with a fencing epoch, the portable way to elect one holder:
 * one conditional UPDATE takes it when this process holds it or it has
 * expired (by the database's clock), and raises the epoch whenever the
 * holder changes. The epoch is the fencing token: writes made under the
 * lease check it in their transaction (fenced-db.ts), so a holder that
 * stalled past its lease cannot write after another took over.
 */
export class Lease {
  constructor(private readonly o: LeaseOptions) {}

  private nowExpr(params: Array<string | number>): string {
    if (!this.o.now) return dbNowSql(this.o.db.dialect);
    params.push(this.o.now());
    return 'CAST(? AS BIGINT)';
  }

  /** Takes or renews the lease; its epoch when held after this, else undefined. */
  async acquire(): Promise<number | undefined> {
    const { name, owner, ttlMs } = this.o;
    // Parameters are pushed in the order their ? appear in the statement (the time, when injected, at each use).
    const p: Array<string | number> = [owner, owner];
    const acquired = this.nowExpr(p);
    p.push(owner);
    const expires = this.nowExpr(p);
    p.push(ttlMs, name, owner);
    const expired = this.o.exclusive ? '1 = 1' : `expires_at <= ${this.nowExpr(p)}`;
    const row = await this.o.db.get<{ epoch: number }>(
      `UPDATE leases SET epoch = CASE WHEN owner = ? THEN epoch ELSE epoch + 1 END,
         acquired_at = CASE WHEN owner = ? THEN acquired_at ELSE ${acquired} END,
         owner = ?, expires_at = ${expires} + CAST(? AS BIGINT)
       WHERE name = ? AND (owner = ? OR ${expired}) RETURNING epoch`, p);
    return row ? Number(row.epoch) : undefined;
  }

  /** Gives the lease up at once (a clean stop): the next replica need not wait for it to expire. */
  async release(epoch: number): Promise<void> {
    await this.o.db.run('UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ? AND epoch = ?', [this.o.name, this.o.owner, epoch]);
  }

  /** The lease as the database has it now. */
  async read(): Promise<LeaseRow | undefined> {
    const p: Array<string | number> = [];
    const now = this.nowExpr(p);
    p.push(this.o.name);
    const r = await this.o.db.get<{ owner: string; epoch: number; expires_at: number; acquired_at: number; now: number }>(
      `SELECT owner, epoch, expires_at, acquired_at, ${now} AS now FROM leases WHERE name = ?`, p);
    return r && { owner: r.owner, epoch: Number(r.epoch), expiresAt: Number(r.expires_at), acquiredAt: Number(r.acquired_at), now: Number(r.now) };
  }
}
