import Database from 'better-sqlite3';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { MIGRATIONS } from './migrations.js';

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
  run(sql: string, params?: SqlValue[]): Promise<RunResult>;
  get<T>(sql: string, params?: SqlValue[]): Promise<T | undefined>;
  all<T>(sql: string, params?: SqlValue[]): Promise<T[]>;
  /** Runs `fn` in one transaction; concurrent transactions are serialised. */
  tx<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The embedded default: SQLite in WAL mode in the controller's data directory. */
export class SqliteDb implements Db {
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
    return { changes: this.stmt(sql).run(...params).changes };
  }

  async get<T>(sql: string, params: SqlValue[] = []): Promise<T | undefined> {
    return this.stmt(sql).get(...params) as T | undefined;
  }

  async all<T>(sql: string, params: SqlValue[] = []): Promise<T[]> {
    return this.stmt(sql).all(...params) as T[];
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

  /** Applies pending migrations in order; each in its own transaction. */
  migrate(): number {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    const row = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    const current = row.v ?? 0;
    const latest = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;
    if (current > latest) {
      throw new FerryError(ErrorCode.Config, `the store is at schema version ${current}, newer than this controller knows (${latest})`,
        'run the newer controller version, or restore the data directory from a backup made before the upgrade');
    }
    let applied = 0;
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      })();
      applied++;
    }
    return applied;
  }

  async close(): Promise<void> {
    await this.txQueue;
    this.db.close();
  }
}
