import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Db } from './db.js';
import { MIGRATIONS, type Migration } from './migrations.js';

/** Any number, as long as every replica uses the same: the advisory lock that serialises migrations on PostgreSQL. */
const MIGRATION_LOCK = 0x66657272; // "ferr"

/** The schema version the store is at (0: empty). */
export async function storeVersion(db: Db): Promise<number> {
  const row = await db.get<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
  return Number(row?.v ?? 0);
}

/**
 * Brings the store to the newest schema this controller knows, one
 * migration per transaction, and refuses a store newer than that (a newer
 * controller wrote it; running older code over it could corrupt it).
 * Several replicas starting at once on one PostgreSQL database take turns
 * on an advisory lock, so each migration is applied exactly once; on SQLite
 * the transaction itself is the lock. Returns how many were applied.
 */
export async function migrateStore(db: Db, migrations: readonly Migration[] = MIGRATIONS): Promise<number> {
  const latest = migrations[migrations.length - 1]?.version ?? 0;
  const lock = async (t: Db) => {
    if (t.dialect === 'postgres') await t.get('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
  };
  const refuseNewer = async (t: Db) => {
    const current = await storeVersion(t);
    if (current > latest) {
      throw new FerryError(ErrorCode.Config, `the store is at schema version ${current}, newer than this controller knows (${latest})`,
        'run the newer controller version, or restore the store from a backup made before the upgrade');
    }
    return current;
  };
  await db.tx(async (t) => {
    await lock(t);
    await t.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
    await refuseNewer(t);
  });
  let applied = 0;
  for (const m of migrations) {
    // Read again under the lock: another replica may have applied it meanwhile.
    const done = await db.tx(async (t) => {
      await lock(t);
      if (m.version <= (await refuseNewer(t))) return false;
      await t.exec(t.dialect === 'postgres' && m.postgres !== undefined ? m.postgres : m.sql);
      await t.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, Date.now()]);
      return true;
    });
    if (done) applied++;
  }
  return applied;
}
