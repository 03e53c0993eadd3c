import Database from 'better-sqlite3';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

export type Dialect = 'sqlite' | 'postgres';

export type SqlValue = string | number | bigint | null;

/** Result of a statement that changes rows. */
export interface RunResult {
  changes: number;
}

/**
 * The one query layer the controller uses. SQL is written once in the
 * portable subset of SQLite and PostgreSQL with `?` placeholders; the
 * interface is asynchronous so a PostgreSQL driver fits behind it unchanged.
 */
export interface Db {
  /** Which SQL the store speaks, for the few statements that differ (migrations, the lease's clock, locks). */
  readonly dialect: Dialect;
  run(sql: string, params?: SqlValue[]): Promise<RunResult>;
  get<T>(sql: string, params?: SqlValue[]): Promise<T | undefined>;
  all<T>(sql: string, params?: SqlValue[]): Promise<T[]>;
  /** Several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /**
   * Runs `fn` in one transaction; statements through the `db` it is given
   * run inside it. SQLite serialises transactions (one connection); on
   * PostgreSQL each has its own connection and they run concurrently.
   */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * A write clashed with a primary key or a unique constraint: the row is
 * there already. Both dialects throw this one type (SQLite's
 * SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE, PostgreSQL's SQLSTATE 23505), so
 * a caller that takes "already written" as an answer tests `instanceof`
 * instead of knowing each driver's codes. `code` keeps the driver's.
 */
export class DuplicateKeyError extends Error {
  override readonly name = 'DuplicateKeyError';
  constructor(message: string, readonly code: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The SQLite driver's codes for a primary-key or unique clash. */
const SQLITE_DUPLICATE = new Set(['SQLITE_CONSTRAINT_PRIMARYKEY', 'SQLITE_CONSTRAINT_UNIQUE']);

/** better-sqlite3's error as the store's: a key clash becomes DuplicateKeyError; anything else unchanged. */
function sqliteError(err: unknown): unknown {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && SQLITE_DUPLICATE.has(code) ? new DuplicateKeyError((err as Error).message, code, { cause: err }) : err;
}

/** The embedded default: SQLite in WAL mode in the controller's data directory. */
export class SqliteDb implements Db {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();
  private txQueue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    try {
      this.db = new Database(path);
    } catch (err) {
      throw new FerryError(ErrorCode.Config, `cannot open the store ${path}: ${(err as Error).message}`,
        'check that the data directory exists and is writable by the controller');
    }
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  async run(sql: string, params: SqlValue[] = []): Promise<RunResult> {
    try {
      return { changes: this.stmt(sql).run(...params).changes };
    } catch (err) {
      throw sqliteError(err);
    }
  }

  async get<T>(sql: string, params: SqlValue[] = []): Promise<T | undefined> {
    try {
      return this.stmt(sql).get(...params) as T | undefined;
    } catch (err) {
      throw sqliteError(err);
    }
  }

  async all<T>(sql: string, params: SqlValue[] = []): Promise<T[]> {
    try {
      return this.stmt(sql).all(...params) as T[];
    } catch (err) {
      throw sqliteError(err);
    }
  }

  tx<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    // One connection: a transaction must not interleave with another's
    // statements across an await, so transactions queue behind each other.
    const next = this.txQueue.then(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(this);
        this.db.exec('COMMIT');
        return out;
      } catch (err) {
        this.db.exec('ROLLBACK');
        throw err;
      }
    });
    this.txQueue = next.catch(() => undefined);
    return next;
  }

  async exec(sql: string): Promise<void> {
    this.db.exec(sql);
  }

  async close(): Promise<void> {
    await this.txQueue;
    this.db.close();
  }
}
