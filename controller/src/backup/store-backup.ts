import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { MIGRATIONS } from '../store/migrations.js';

/** What a store snapshot says about itself, recorded in the backup's manifest. */
export interface StoreSnapshotInfo {
  kind: string;
  /** The schema version (highest migration applied). */
  schemaVersion: number;
  /** Archive path of the snapshot inside the backup. */
  path: string;
}

/**
 * The store's part of a backup, one implementation per backend: the rest
 * of backup and restore (CA and keys, chunks, configuration, encryption)
 * is the same for every store.
 */
export interface StoreBackup {
  readonly kind: string;
  /** Writes a consistent snapshot of the live store to `destFile`, while the controller keeps running. */
  snapshot(destFile: string): Promise<StoreSnapshotInfo>;
  /** Checks a restored snapshot at `file` and puts it where the controller opens its store (under `dataDir`, or the database given). */
  restore(file: string, dataDir: string): Promise<{ schemaVersion: number }>;
}

/**
 * The embedded SQLite store (DATA/ferry.db). The snapshot uses SQLite's
 * online backup API through a connection of its own: it copies a
 * consistent state of the database (WAL included) page by page while the
 * controller keeps writing, and never blocks the controller's writes.
 */
export class SqliteStoreBackup implements StoreBackup {
  readonly kind = 'sqlite';
  constructor(private readonly dbFile: string) {}

  async snapshot(destFile: string): Promise<StoreSnapshotInfo> {
    if (!existsSync(this.dbFile)) {
      throw new FerryError(ErrorCode.NotFound, `no store at ${this.dbFile}`, 'is --data the controller\'s data directory? It holds ferry.db and pki/');
    }
    const db = new Database(this.dbFile, { fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      await db.backup(destFile);
    } finally {
      db.close();
    }
    return { kind: this.kind, schemaVersion: schemaVersion(destFile), path: 'store/ferry.db' };
  }

  async restore(file: string, dataDir: string): Promise<{ schemaVersion: number }> {
    const db = new Database(file, { fileMustExist: true });
    try {
      const check = db.pragma('integrity_check', { simple: true });
      if (check !== 'ok') throw new FerryError(ErrorCode.BackupDamaged, `the store in the backup fails SQLite's integrity check: ${String(check)}`, 'use another backup');
    } finally {
      db.close();
    }
    const v = schemaVersion(file);
    const latest = MIGRATIONS[MIGRATIONS.length - 1]!.version;
    if (v > latest) {
      throw new FerryError(ErrorCode.Config, `the backup's store is at schema version ${v}, newer than this controller knows (${latest})`,
        'restore it with the ferry version that made it (or newer)');
    }
    const { rename } = await import('node:fs/promises');
    await rename(file, join(dataDir, 'ferry.db'));
    return { schemaVersion: v };
  }
}

function schemaVersion(file: string): number {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
    return row.v ?? 0;
  } finally {
    db.close();
  }
}
