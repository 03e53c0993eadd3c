import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord } from '../../../common/src/cli/json-records.js';
import { DirLock } from '../../../common/src/dir-lock.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { silentLogger } from '../../../common/src/log.js';
import { defaultDataDir } from '../config.js';
import { copySqliteToPostgres } from '../store/copy-store.js';
import { SqliteDb } from '../store/db.js';
import { PgDb } from '../store/pg-db.js';
import { parseStoreUrl } from '../store/store-url.js';

const USAGE = 'use `ferry controller migrate-store --data DIR --to postgres://USER@HOST:5432/DB` (password in the URL or PGPASSWORD)';

/**
 * `ferry controller migrate-store --to postgres://…`: copies a stopped
 * SQLite controller's store into an empty PostgreSQL database, verified
 * table by table (store/copy-store.ts). The data directory's lock is held
 * for the whole copy, so a running controller is refused and none can
 * start on the directory meanwhile.
 */
export async function cmdControllerMigrateStore(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, { data: { type: 'string' }, to: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length) throw new FerryError(ErrorCode.InvalidArgument, `migrate-store takes no arguments, not ${positionals.join(' ')}`, USAGE);
  if (!values.to) throw new FerryError(ErrorCode.InvalidArgument, 'migrate-store needs --to, the PostgreSQL database to copy into', USAGE);
  const target = parseStoreUrl(values.to);
  if (target.problem || target.store?.kind !== 'postgres') {
    throw new FerryError(ErrorCode.InvalidArgument, target.problem ?? `--to must be a postgres:// URL, not "${values.to}"`, USAGE);
  }
  const dataDir = resolve(values.data ?? process.env['FERRY_DATA'] ?? defaultDataDir());
  const dbFile = join(dataDir, 'ferry.db');
  if (!existsSync(dbFile)) {
    throw new FerryError(ErrorCode.NotFound, `no SQLite store at ${dbFile}`, 'give the stopped controller\'s data directory with --data');
  }
  const lock = DirLock.acquire(dataDir, {
    owner: 'ferry controller migrate-store', what: 'the controller data directory',
    hint: 'stop the controller first (systemctl stop ferry-controller): a running controller keeps changing the store being copied',
  });
  const src = new SqliteDb(dbFile);
  const dst = new PgDb({ url: target.store.url, log: silentLogger(), poolSize: 2 });
  try {
    const r = await copySqliteToPostgres(src, dst, (t) => { if (!values.json) process.stderr.write(`  ${t.table}: ${t.rows} rows, verified\n`); });
    const counts = Object.fromEntries(r.tables.map((t) => [t.table, t.rows]));
    if (values.json) {
      writeRecord({ type: 'controller-migrate-store', dataDir, to: target.store.display, schemaVersion: r.schemaVersion, tables: r.tables.length, rows: r.rows, counts, verified: true });
    } else {
      process.stdout.write(`copied ${r.rows} rows in ${r.tables.length} tables from ${dbFile} to ${target.store.display} (schema ${r.schemaVersion}); every table verified (row count and contents)\n`
        + 'next: start the first replica on this data directory (it puts the CA into the store), with its chunks on shared storage:\n'
        + `  ferry controller start --data ${dataDir} --store ${target.store.display} --chunks ${join(dataDir, 'chunks')}   # or a shared directory holding a copy of it\n`
        + 'the SQLite store is left as it was; do not start a controller on it again once replicas run on PostgreSQL\n');
    }
    return Exit.Ok;
  } finally {
    await dst.close().catch(() => undefined);
    await src.close().catch(() => undefined);
    lock.release();
  }
}
