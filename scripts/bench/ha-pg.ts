/**
 * The PostgreSQL side of the HA benchmark (ha.ts): a throwaway durable
 * server (test/support/postgres.ts ownPostgres: fsync and synchronous commit
 * on, as in production) with pg_stat_statements loaded, one database for the
 * replicas, and the counters the suite reads — statements, transactions and
 * rows per interval, and the CPU of the whole server (postmaster, its live
 * backends and the backends that exited meanwhile).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { ownPostgres, type PgServer } from '../../test/support/postgres.js';
import { childPids, type Janitor } from './kit.js';

export interface PgCounters {
  /** pg_stat_statements: statements executed (all databases' user statements, this database only). */
  calls: number;
  /** pg_stat_database: committed + rolled-back transactions of the Ferry database. */
  xacts: number;
  rowsRead: number;
  rowsWritten: number;
  /** Server CPU ms so far (user + system, reaped backends included). */
  cpuMs: number;
}

export interface TopStatement { calls: number; meanMs: number; query: string }

/** utime + stime (+ cutime + cstime when `reaped`) of a process, in ms (USER_HZ = 100). */
function cpuOf(pid: number, reaped: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return (f[11]! + f[12]! + (reaped ? f[13]! + f[14]! : 0)) * 10;
  } catch {
    return 0; // a backend that exited between listing and reading: counted in the postmaster's cutime next time
  }
}

export class BenchPostgres {
  private constructor(private readonly server: PgServer & { remove(): Promise<void> }, readonly url: string, private readonly pool: pg.Pool, private readonly dbName: string) {}

  /** A durable server with pg_stat_statements preloaded, and an empty database (its URL: `url`). */
  static async start(j: Janitor): Promise<BenchPostgres> {
    const server = await ownPostgres();
    j.onCleanup(() => server.remove());
    const admin = new pg.Client({ connectionString: server.url() });
    await admin.connect();
    await admin.query("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
    await admin.end();
    server.stop('fast');
    server.start();
    const url = await server.createDatabase();
    const dbName = new URL(url).pathname.slice(1);
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    j.onCleanup(() => pool.end().catch(() => undefined));
    await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return new BenchPostgres(server, url, pool, dbName);
  }

  private get postmasterPid(): number {
    return Number(readFileSync(join(this.server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  }

  /** CPU ms of the whole server so far. */
  cpuMs(): number {
    const pm = this.postmasterPid;
    return cpuOf(pm, true) + childPids(pm).reduce((s, p) => s + cpuOf(p, false), 0);
  }

  /** The counters now. The suite's own counter queries are a few statements per reading, left in. */
  async counters(): Promise<PgCounters> {
    const st = await this.pool.query<{ calls: string }>('SELECT COALESCE(SUM(s.calls), 0) AS calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1', [this.dbName]);
    const db = await this.pool.query<{ x: string; r: string; w: string }>(
      'SELECT xact_commit + xact_rollback AS x, tup_returned + tup_fetched AS r, tup_inserted + tup_updated + tup_deleted AS w FROM pg_stat_database WHERE datname = $1', [this.dbName]);
    const d = db.rows[0]!;
    return { calls: Number(st.rows[0]!.calls), xacts: Number(d.x), rowsRead: Number(d.r), rowsWritten: Number(d.w), cpuMs: this.cpuMs() };
  }

  /** The statements run most often since the last reset (the suite's own counter queries excluded). */
  async top(n: number): Promise<TopStatement[]> {
    const r = await this.pool.query<{ calls: string; mean: number; query: string }>(
      `SELECT s.calls, s.mean_exec_time AS mean, s.query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = $1 AND s.query NOT LIKE '%pg_stat_%' ORDER BY s.calls DESC LIMIT $2`, [this.dbName, n]);
    return r.rows.map((x) => ({ calls: Number(x.calls), meanMs: Number(x.mean), query: x.query.replace(/\s+/g, ' ').slice(0, 160) }));
  }

  async resetStatements(): Promise<void> {
    await this.pool.query('SELECT pg_stat_statements_reset()');
  }

  /** The first address of the replica holding the scheduler lease now (database clock), if any. */
  async leaderAddress(): Promise<string | undefined> {
    const r = await this.pool.query<{ addresses: string }>(
      "SELECT r.addresses FROM leases l JOIN replicas r ON r.id = l.owner WHERE l.name = 'scheduler' AND l.expires_at > (CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))");
    const a = r.rows[0]?.addresses;
    return a ? (JSON.parse(a) as string[])[0] : undefined;
  }

  /** Agent sessions recorded per replica address (live replicas only). */
  async sessionsPerReplica(): Promise<Map<string, number>> {
    const r = await this.pool.query<{ addresses: string; n: string }>(
      'SELECT r.addresses, COUNT(a.id) AS n FROM replicas r LEFT JOIN agents a ON a.session_replica = r.id GROUP BY r.addresses');
    return new Map(r.rows.map((x) => [(JSON.parse(x.addresses) as string[])[0]!, Number(x.n)]));
  }

  /** Server settings that shape the numbers, for the report. */
  async settings(): Promise<string> {
    const r = await this.pool.query<{ name: string; setting: string }>(
      "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'max_connections') ORDER BY name");
    return r.rows.map((x) => `${x.name}=${x.setting}`).join(', ');
  }
}

/** The difference of two readings. */
export function pgDelta(a: PgCounters, b: PgCounters): PgCounters {
  return { calls: b.calls - a.calls, xacts: b.xacts - a.xacts, rowsRead: b.rowsRead - a.rowsRead, rowsWritten: b.rowsWritten - a.rowsWritten, cpuMs: b.cpuMs - a.cpuMs };
}
