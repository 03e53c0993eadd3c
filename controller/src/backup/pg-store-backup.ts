import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { silentLogger } from '../../../common/src/log.js';
import { runProcess } from '../../../common/src/proc/run-process.js';
import { postgresTables } from '../store/copy-store.js';
import { storeVersion } from '../store/migrate.js';
import { PgDb } from '../store/pg-db.js';
import { redactStoreUrl } from '../store/store-url.js';
import type { StoreBackup, StoreSnapshotInfo } from './store-backup.js';

/**
 * Where pg_dump and pg_restore are: $FERRY_PG_BIN, else the newest Debian
 * client directory (/usr/lib/postgresql/N/bin, package postgresql-client-N:
 * a pg_dump dumps servers of its own major version and older), else PATH.
 */
export function pgTool(name: 'pg_dump' | 'pg_restore', env: NodeJS.ProcessEnv = process.env): string {
  if (env['FERRY_PG_BIN']) return join(env['FERRY_PG_BIN'], name);
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', name))) return join(root, v, 'bin', name);
  return name;
}

/** The URL without its password (libpq reads that from PGPASSWORD), so it is never on a command line others can read in ps. */
export function libpqTarget(url: string): { url: string; env: Record<string, string> } {
  const u = new URL(url);
  const password = u.password ? decodeURIComponent(u.password) : u.searchParams.get('password') ?? undefined;
  u.password = '';
  u.searchParams.delete('password');
  return { url: u.toString(), env: password !== undefined ? { PGPASSWORD: password } : {} };
}

/**
 * A PostgreSQL store (`--store postgres://…`, shared by replicas). The
 * snapshot is `pg_dump --format=custom`: one consistent snapshot of the
 * database (a repeatable-read transaction) taken while every replica keeps
 * writing. Restore refuses a database that holds any table, then runs
 * `pg_restore --single-transaction --exit-on-error`, so a failed restore
 * leaves the target as empty as it was.
 */
export class PostgresStoreBackup implements StoreBackup {
  readonly kind = 'postgres';
  private readonly display: string;

  constructor(private readonly url: string, private readonly env: NodeJS.ProcessEnv = process.env) {
    this.display = redactStoreUrl(url);
  }

  private async tool(name: 'pg_dump' | 'pg_restore', args: string[], what: string): Promise<void> {
    const bin = pgTool(name, this.env);
    const target = libpqTarget(this.url);
    const r = await runProcess({ argv: [bin, ...args, '--dbname', target.url], env: target.env, plainLocale: true });
    if (r.startError) {
      throw new FerryError(ErrorCode.Config, `cannot run ${bin} to ${what}: ${r.startError}`,
        'install the PostgreSQL client tools of the server\'s major version or newer (Debian: postgresql-client-15), or set FERRY_PG_BIN to their directory');
    }
    if (r.exitCode !== 0) {
      const detail = r.stderr.trim().split('\n').slice(-3).join(' / ').replace(this.url, this.display);
      throw new FerryError(ErrorCode.Unavailable, `${name} could not ${what} (${this.display}): ${detail || `exit ${r.exitCode ?? r.signal}`}`,
        'check that PostgreSQL is reachable with this URL and that the client tools are not older than the server (FERRY_PG_BIN)');
    }
  }

  private async withDb<T>(fn: (db: PgDb) => Promise<T>): Promise<T> {
    const db = new PgDb({ url: this.url, log: silentLogger(), poolSize: 1 });
    try {
      return await fn(db);
    } finally {
      await db.close();
    }
  }

  async snapshot(destFile: string): Promise<StoreSnapshotInfo> {
    const schemaVersion = await this.withDb((db) => storeVersion(db));
    await this.tool('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', '--file', destFile], 'dump the store');
    return { kind: this.kind, schemaVersion, path: 'store/ferry.pgdump' };
  }

  async restore(file: string): Promise<{ schemaVersion: number }> {
    const present = await this.withDb((db) => postgresTables(db));
    if (present.length > 0) {
      throw new FerryError(ErrorCode.AlreadyExists, `the database to restore into (${this.display}) is not empty (${present.length} tables, e.g. ${present.slice(0, 3).join(', ')})`,
        'restore into a new, empty database (CREATE DATABASE ferry OWNER ferry); a restore never merges into or replaces an existing store');
    }
    await this.tool('pg_restore', ['--single-transaction', '--exit-on-error', '--no-owner', '--no-privileges', file], 'restore the store');
    return { schemaVersion: await this.withDb((db) => storeVersion(db)) };
  }
}
