import { join } from 'node:path';
import type { Logger } from '../../../common/src/log.js';
import { SqliteDb, type Db } from './db.js';
import { migrateStore } from './migrate.js';
import { PgDb } from './pg-db.js';
import type { StoreLocation } from './store-url.js';

/**
 * Opens the configured store and brings its schema up to date: SQLite in
 * the data directory, or the shared PostgreSQL database. A store that cannot
 * be migrated (newer than this binary, unreachable) is closed again before
 * the error goes up, so a failed start holds no connection.
 */
export async function openStore(store: StoreLocation, dataDir: string, log: Logger): Promise<{ db: Db; applied: number }> {
  const db: Db = store.kind === 'postgres'
    ? new PgDb({ url: store.url, log: log.child({ part: 'store' }) })
    : new SqliteDb(join(dataDir, 'ferry.db'));
  try {
    const applied = await migrateStore(db);
    return { db, applied };
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
}
