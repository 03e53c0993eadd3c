import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Db, RunResult, SqlValue } from '../store/db.js';

/** The lease a write is made under: it must still be this holder's, at this epoch, when the write commits. */
export interface Fence {
  name: string;
  owner: string;
  epoch: number;
}

/** Thrown by a fenced write of a replica that is no longer the lease holder. */
export function fencedOut(name: string, epoch: number | undefined): FerryError {
  return new FerryError(ErrorCode.Unavailable,
    epoch === undefined
      ? `this controller replica does not hold the ${name} lease; the write was refused`
      : `this controller replica lost the ${name} lease (it held epoch ${epoch}; another replica took over); the write was refused`,
    'singleton work runs on the lease holder; `ferry controller status` names it');
}

/**
 * The store as singleton work sees it: reads as they are; every write in a
 * transaction that first checks the fence (lease row still at this holder's
 * epoch). On PostgreSQL the check takes a share lock on the lease row, so a
 * takeover (an UPDATE of that row) waits for a write already checked to
 * commit, and every write after the takeover fails the check: a stalled old
 * holder cannot write once another replica holds the lease. On SQLite the
 * transaction is the lock (one writer).
 */
export class FencedDb implements Db {
  readonly dialect: Db['dialect'];

  constructor(private readonly inner: Db, private readonly fence: () => Fence | undefined, private readonly leaseName = 'scheduler') {
    this.dialect = inner.dialect;
  }

  private async check(t: Db): Promise<void> {
    const f = this.fence();
    if (!f) throw fencedOut(this.leaseName, undefined);
    const lock = t.dialect === 'postgres' ? ' FOR SHARE' : '';
    const row = await t.get('SELECT epoch FROM leases WHERE name = ? AND owner = ? AND epoch = ?' + lock, [f.name, f.owner, f.epoch]);
    if (!row) throw fencedOut(f.name, f.epoch);
  }

  get<T>(sql: string, params?: SqlValue[]): Promise<T | undefined> {
    return this.inner.get<T>(sql, params);
  }

  all<T>(sql: string, params?: SqlValue[]): Promise<T[]> {
    return this.inner.all<T>(sql, params);
  }

  run(sql: string, params?: SqlValue[]): Promise<RunResult> {
    return this.inner.tx(async (t) => {
      await this.check(t);
      return t.run(sql, params);
    });
  }

  exec(sql: string): Promise<void> {
    return this.inner.tx(async (t) => {
      await this.check(t);
      await t.exec(sql);
    });
  }

  tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    return this.inner.tx(async (t) => {
      await this.check(t);
      return fn(t);
    });
  }

  /** The store is the controller's; singleton work does not close it. */
  async close(): Promise<void> {}
}
