import { createHash } from 'node:crypto';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Db, SqlValue } from './db.js';
import { migrateStore, storeVersion } from './migrate.js';

/** One table as copied: rows on each side and whether their contents agree. */
export interface TableCopy {
  table: string;
  rows: number;
}

export interface CopyResult {
  schemaVersion: number;
  tables: TableCopy[];
  rows: number;
}

/** Statement parameters stay far below PostgreSQL's 65,535 per statement. */
const MAX_PARAMS = 30_000;
const MAX_ROWS_PER_INSERT = 500;

/** The tables of a SQLite store that hold controller data (schema_migrations is the target's own). */
async function sqliteTables(src: Db): Promise<Array<{ name: string; columns: string[] }>> {
  const tables = await src.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations' ORDER BY name");
  const out: Array<{ name: string; columns: string[] }> = [];
  for (const t of tables) {
    if (!/^[a-z_][a-z0-9_]*$/.test(t.name)) throw new FerryError(ErrorCode.Config, `the SQLite store has a table named "${t.name}", which no ferry migration creates`, 'the store was changed by hand; restore it from a backup before migrating');
    const cols = await src.all<{ name: string }>(`PRAGMA table_info(${t.name})`);
    out.push({ name: t.name, columns: cols.map((c) => c.name) });
  }
  return out;
}

/** A value as both stores give it back for one stored value: numbers as numbers, text as text. */
function norm(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Buffer.isBuffer(v)) return v.toString('base64');
  return v ?? null;
}

/**
 * A digest of a table's contents that does not depend on row order (the two
 * databases sort text differently): each row hashed as JSON of its values in
 * column order, the row hashes sorted, then hashed together.
 */
async function tableDigest(db: Db, table: string, columns: string[]): Promise<{ rows: number; digest: string }> {
  const rows = await db.all<Record<string, unknown>>(`SELECT ${columns.join(', ')} FROM ${table}`);
  const hashes = rows.map((r) => createHash('sha256').update(JSON.stringify(columns.map((c) => norm(r[c])))).digest('hex')).sort();
  const all = createHash('sha256');
  for (const h of hashes) all.update(h);
  return { rows: rows.length, digest: all.digest('hex') };
}

/** Whether the target database holds any table at all (a store, or anything else). */
export async function postgresTables(db: Db): Promise<string[]> {
  const rows = await db.all<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name');
  return rows.map((r) => r.table_name);
}

/**
 * Copies a SQLite store (brought to this binary's schema first, as a start
 * would) into an empty PostgreSQL database, in one PostgreSQL transaction:
 * the schema by the same migrations, then every table's rows, then a check
 * that each table has the same number of rows with the same contents on
 * both sides (an order-independent digest of every value). Any failure,
 * the check included, rolls everything back: the target is left empty and
 * the command can be run again. The source is only read.
 */
export async function copySqliteToPostgres(src: Db, dst: Db, progress: (t: TableCopy) => void = () => undefined): Promise<CopyResult> {
  await migrateStore(src);
  const version = await storeVersion(src);
  const tables = await sqliteTables(src);
  return dst.tx(async (t) => {
    const present = await postgresTables(t);
    if (present.length > 0) {
      throw new FerryError(ErrorCode.AlreadyExists, `the target database is not empty (${present.length} tables, e.g. ${present.slice(0, 3).join(', ')})`,
        'migrate into a new, empty database (CREATE DATABASE ferry OWNER ferry); migrate-store never merges into or replaces an existing one');
    }
    await migrateStore(t);
    const copied: TableCopy[] = [];
    for (const { name, columns } of tables) {
      // Rows a migration seeded (the scheduler lease) come from the source like every other row.
      await t.run(`DELETE FROM ${name}`);
      const per = Math.max(1, Math.min(MAX_ROWS_PER_INSERT, Math.floor(MAX_PARAMS / columns.length)));
      const rows = await src.all<Record<string, unknown>>(`SELECT ${columns.join(', ')} FROM ${name}`);
      for (let i = 0; i < rows.length; i += per) {
        const batch = rows.slice(i, i + per);
        const values = batch.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ');
        await t.run(`INSERT INTO ${name} (${columns.join(', ')}) VALUES ${values}`, batch.flatMap((r) => columns.map((c) => norm(r[c]) as SqlValue)));
      }
      const [a, b] = await Promise.all([tableDigest(src, name, columns), tableDigest(t, name, columns)]);
      if (a.rows !== b.rows || a.digest !== b.digest) {
        throw new FerryError(ErrorCode.Internal, `table ${name}: ${a.rows} rows in SQLite, ${b.rows} in PostgreSQL${a.rows === b.rows ? ' with different contents' : ''}; nothing was kept`,
          'report this with the table name; the SQLite store is unchanged and the controller can be started on it again');
      }
      const c = { table: name, rows: b.rows };
      copied.push(c);
      progress(c);
    }
    const target = await storeVersion(t);
    if (target !== version) throw new FerryError(ErrorCode.Internal, `schema version ${target} in PostgreSQL, ${version} in SQLite after migrating; nothing was kept`);
    return { schemaVersion: version, tables: copied, rows: copied.reduce((n, c) => n + c.rows, 0) };
  });
}
