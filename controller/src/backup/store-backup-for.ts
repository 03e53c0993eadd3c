/**
 * Which StoreBackup a controller's store needs: by its --store URL for a backup, by the kind a
 * backup's manifest names for a restore. Apart from the implementations so that neither imports
 * the other.
 */
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { PostgresStoreBackup } from './pg-store-backup.js';
import { SqliteStoreBackup, type StoreBackup } from './store-backup.js';

/**
 * The store of a controller: `url` is its --store setting (undefined or
 * "sqlite" for the embedded store in `dataDir`, postgres://… for a server).
 */
export function storeBackupFor(dataDir: string, url?: string): StoreBackup {
  if (url === undefined || url === '' || url === 'sqlite') return new SqliteStoreBackup(join(dataDir, 'ferry.db'));
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresStoreBackup(url);
  throw new FerryError(ErrorCode.InvalidArgument, `unknown store "${url}"`, 'the store is sqlite (the default) or a postgres:// URL');
}

/**
 * The store kind a backup's manifest names, for restore: SQLite goes into
 * the data directory; PostgreSQL into `storeUrl`, an empty database.
 */
export function storeBackupForKind(kind: string, dataDir: string, storeUrl?: string): StoreBackup {
  if (kind === 'sqlite') {
    if (storeUrl && storeUrl !== 'sqlite') {
      throw new FerryError(ErrorCode.InvalidArgument, 'this backup holds a SQLite store, which is restored into the data directory, not into --store',
        'restore without --store, then move it to PostgreSQL with `ferry controller migrate-store` (docs/ha.md)');
    }
    return new SqliteStoreBackup(join(dataDir, 'ferry.db'));
  }
  if (kind === 'postgres') {
    if (!storeUrl || !/^postgres(ql)?:\/\//.test(storeUrl)) {
      throw new FerryError(ErrorCode.InvalidArgument, 'this backup holds a PostgreSQL store; restore needs the empty database to put it in',
        'give --store postgres://USER@HOST:5432/DB (an empty database; password in the URL or PGPASSWORD)');
    }
    return new PostgresStoreBackup(storeUrl);
  }
  throw new FerryError(ErrorCode.BackupDamaged, `the backup holds a store of kind "${kind}", which this ferry does not know`, 'restore it with the ferry version that made it');
}
