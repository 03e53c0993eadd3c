import { untilDeadline } from '../../../common/src/until-deadline.js';
import pg from 'pg';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import { DuplicateKeyError, type Db, type RunResult, type SqlValue } from './db.js';
import { numberPlaceholders } from './placeholders.js';
import { redactStoreUrl } from './store-url.js';

/** BIGINT (int8) and NUMERIC come back as numbers, as SQLite returns them: times are ms since the epoch, far below 2^53. */
const INT8 = 20;
const NUMERIC = 1700;
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8 || oid === NUMERIC) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

/** SQLSTATE classes that mean "the server or the connection is gone", not "the statement is wrong". */
function unavailable(err: unknown): boolean {
  const code = String((err as { code?: unknown }).code ?? '');
  const msg = (err as Error).message ?? '';
  return /^(08|57P)/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code)
    || /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error/.test(msg);
}

export interface PgDbOptions {
  /** postgres://… (may carry a password; only its redacted form is ever shown). */
  url: string;
  log: Logger;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** A statement that gets no answer in this long fails (default 30 s): a half-dead connection must not hang the controller. */
  queryTimeoutMs?: number;
}

/**
 * The PostgreSQL store, behind the same Db interface as SQLite: `?`
 * placeholders numbered once per statement text, statements on a pool of
 * connections, each transaction on one connection taken from the pool for
 * its whole life. Transactions run concurrently under READ COMMITTED, so
 * (as across replicas anyway) correctness rests on keys and conditional
 * updates, never on one process being the only writer. A lost server
 * surfaces as UNAVAILABLE (retryable); the pool reconnects by itself.
 */
export class PgDb implements Db {
  readonly dialect = 'postgres' as const;
  readonly display: string;
  private readonly pool: pg.Pool;
  private closed = false;

  constructor(private readonly o: PgDbOptions) {
    this.display = redactStoreUrl(o.url);
    this.pool = new pg.Pool({
      connectionString: o.url,
      max: o.poolSize ?? 10,
      types: typeParsers,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 10_000,
      query_timeout: o.queryTimeoutMs ?? 30_000,
      application_name: 'ferry-controller',
    });
    // An idle connection the server dropped (restart, failover) is reported here; the pool replaces it.
    this.pool.on('error', (err) => o.log.warn({ err: err.message, store: this.display }, 'store connection lost; reconnecting on next use'));
  }

  /** Wraps driver errors: a gone server is UNAVAILABLE with a hint; a full disk is DISK_FULL; the rest keep their SQLSTATE in the message. */
  private fail(err: unknown, sql: string): never {
    if (err instanceof FerryError) throw err;
    const e = err as Error & { code?: string };
    if (unavailable(err)) {
      throw new FerryError(ErrorCode.Unavailable, `the store (PostgreSQL at ${this.display}) is unreachable: ${e.message}`,
        'retry shortly; if it persists, check that PostgreSQL is up and reachable from this controller', { cause: err });
    }
    if (e.code === '53100') {
      throw new FerryError(ErrorCode.DiskFull, `the PostgreSQL server's disk is full: ${e.message}`, 'free space on the database server, then retry', { cause: err });
    }
    const where = `${e.message} (SQLSTATE ${e.code ?? '?'}) in: ${sql.replace(/\s+/g, ' ').slice(0, 160)}`;
    if (e.code === '23505') throw new DuplicateKeyError(where, e.code, { cause: err });
    const wrapped = new Error(where, { cause: err });
    (wrapped as Error & { code?: string }).code = e.code;
    throw wrapped;
  }

  async query<T>(on: pg.Pool | pg.PoolClient, sql: string, params: SqlValue[]): Promise<pg.QueryResult<T & pg.QueryResultRow>> {
    try {
      return await on.query<T & pg.QueryResultRow>(numberPlaceholders(sql), params);
    } catch (err) {
      this.fail(err, sql);
    }
  }

  async run(sql: string, params: SqlValue[] = []): Promise<RunResult> {
    return { changes: (await this.query(this.pool, sql, params)).rowCount ?? 0 };
  }

  async get<T>(sql: string, params: SqlValue[] = []): Promise<T | undefined> {
    return (await this.query<T>(this.pool, sql, params)).rows[0];
  }

  async all<T>(sql: string, params: SqlValue[] = []): Promise<T[]> {
    return (await this.query<T>(this.pool, sql, params)).rows;
  }

  async exec(sql: string): Promise<void> {
    try {
      await this.pool.query(sql); // simple protocol: several statements, no parameters
    } catch (err) {
      this.fail(err, sql);
    }
  }

  async tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.closed) throw new FerryError(ErrorCode.Unavailable, 'the store is closed', 'the controller is shutting down');
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      this.fail(err, 'BEGIN');
    }
    const txDb = new PgTxDb(this, client);
    // A checked-out connection has no listener of the pool's: a server that
    // goes away between two statements of the transaction would otherwise
    // raise an unhandled 'error' and end the process. Noted here; the next
    // statement fails UNAVAILABLE and the connection is not reused.
    let lost: Error | undefined;
    const onLost = (err: Error) => { lost = err; };
    client.on('error', onLost);
    const release = (err?: Error) => {
      client.off('error', onLost);
      client.release(err ?? lost);
    };
    try {
      await this.query(client, 'BEGIN', []);
      const out = await fn(txDb);
      await this.query(client, 'COMMIT', []);
      txDb.done = true;
      release();
      return out;
    } catch (err) {
      txDb.done = true;
      try {
        if (lost) throw lost;
        await client.query('ROLLBACK');
        release();
      } catch (e) {
        release(e as Error); // a connection that cannot roll back is not reused
      }
      throw err;
    }
  }

  /** A wake-up hint to every replica listening on `channel` (delivered at commit; never replayed: a hint, not a message). */
  async notify(channel: string): Promise<void> {
    await this.run('SELECT pg_notify(?, \'\')', [channel]);
  }

  /**
   * Calls `fn` on each NOTIFY on `channel`, on a connection of its own
   * (LISTEN belongs to a session, so not a pooled one). A lost connection
   * is made again after a second; hints sent meanwhile are lost, which is
   * why every listener also polls. Returns a function that stops listening.
   */
  listen(channel: string, fn: () => void): () => Promise<void> {
    let client: pg.Client | undefined;
    let stopped = false;
    let retry: NodeJS.Timeout | undefined;
    const connect = () => {
      if (stopped) return;
      const c = new pg.Client({ connectionString: this.o.url, keepAlive: true, application_name: 'ferry-controller-listen' });
      client = c;
      const again = () => {
        if (client !== c) return;
        client = undefined;
        c.end().catch(() => undefined);
        if (!stopped) retry = setTimeout(connect, 1000);
      };
      c.on('error', again);
      c.on('end', again);
      c.on('notification', () => fn());
      c.connect().then(() => c.query(`LISTEN ${channel}`)).then(() => fn(), again);
    };
    connect();
    return async () => {
      stopped = true;
      clearTimeout(retry);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    };
  }

  /**
   * Ends the pool. pg's end() waits for every checked-out connection to be
   * released, so a transaction stuck on a dead server would hold a stopping
   * controller forever: after `waitMs` the remaining connections are left to
   * the process's exit and close returns.
   */
  async close(waitMs = 5_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ended = await untilDeadline(this.pool.end(), Date.now() + waitMs);
    if (!ended) this.o.log.warn({ store: this.display, waitMs }, 'store connections still in use at close; left to end with the process');
  }
}

/** The view of one open transaction: every statement on its connection, in order. */
class PgTxDb implements Db {
  readonly dialect = 'postgres' as const;
  done = false;
  constructor(private readonly owner: PgDb, private readonly client: pg.PoolClient) {}

  private check(): void {
    if (this.done) throw new Error('a statement was issued on a transaction that already ended (an await is missing in its callback)');
  }

  async run(sql: string, params: SqlValue[] = []): Promise<RunResult> {
    this.check();
    return { changes: (await this.owner.query(this.client, sql, params)).rowCount ?? 0 };
  }

  async get<T>(sql: string, params: SqlValue[] = []): Promise<T | undefined> {
    this.check();
    return (await this.owner.query<T>(this.client, sql, params)).rows[0];
  }

  async all<T>(sql: string, params: SqlValue[] = []): Promise<T[]> {
    this.check();
    return (await this.owner.query<T>(this.client, sql, params)).rows;
  }

  async exec(sql: string): Promise<void> {
    this.check();
    await this.client.query(sql);
  }

  /** Already in one: the callback joins it (as SQLite's single connection would). */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    return fn(this);
  }

  async close(): Promise<void> {
    throw new Error('close() on a transaction: close the store instead');
  }
}
