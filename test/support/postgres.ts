import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * One throwaway PostgreSQL server per test run, started on first use from
 * Debian's server binaries (package postgresql-15; FERRY_PG_BIN overrides the
 * directory), and a fresh database per test (CREATE DATABASE is a few ms).
 * As root, the server runs as the `postgres` user (initdb refuses root) in a
 * directory it owns. Durability is off (fsync, full-page writes): the data
 * lives only as long as the run. The server is stopped when the process exits.
 */
export const PG_BIN = process.env['FERRY_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresMissing(): string | undefined {
  for (const b of ['initdb', 'pg_ctl', 'postgres']) {
    if (!existsSync(join(PG_BIN, b))) return `PostgreSQL server binaries not found (${join(PG_BIN, b)}): install the postgresql-15 package (or set FERRY_PG_BIN)`;
  }
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) return 'running as root but there is no postgres user to run the server as';
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A throwaway server: its port, and how to get a fresh database on it. */
export class PgServer {
  private admin: pg.Pool | undefined;

  /**
   * `durable`: fsync and synchronous commit on (PostgreSQL's defaults), for a
   * test that crashes the server and checks that every commit survived; the
   * shared server trades that for speed.
   */
  constructor(readonly dir: string, readonly port: number, private readonly durable = false) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** Runs a server binary as the server's owner. */
  ctl(bin: string, args: string[]): SpawnSyncReturns<string> {
    const argv = [join(PG_BIN, bin), ...args];
    const r = process.getuid?.() === 0
      ? spawnSync('runuser', ['-u', 'postgres', '--', ...argv], { encoding: 'utf8', timeout: 60_000 })
      : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000 });
    return r;
  }

  /** Starts (or restarts after stop()) the server on the same port and data. */
  start(): void {
    const fast = this.durable ? '' : ' -c fsync=off -c full_page_writes=off -c synchronous_commit=off';
    const opts = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1${fast} -c max_connections=400`;
    const r = this.ctl('pg_ctl', ['-D', this.dataDir, '-l', join(this.dir, 'log'), '-w', '-t', '30', '-o', opts, 'start']);
    if (r.status !== 0) {
      const log = existsSync(join(this.dir, 'log')) ? readFileSync(join(this.dir, 'log'), 'utf8').slice(-2000) : '';
      throw new Error(`pg_ctl start failed (${r.status}): ${r.stderr}${r.stdout}\n${log}`);
    }
  }

  /** Stops the server (mode immediate: like a crash, connections cut at once); gives up after 20 s. */
  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    this.ctl('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '20', 'stop']);
  }

  /** A URL for the server's own administrative database. */
  url(database = 'postgres', password?: string): string {
    return `postgres://postgres${password ? `:${password}` : ''}@127.0.0.1:${this.port}/${database}`;
  }

  /** A new empty database; returns its URL (trust auth: any password is accepted, so tests can check it is never shown). */
  async createDatabase(password?: string): Promise<string> {
    if (!this.admin) {
      this.admin = new pg.Pool({ connectionString: this.url(), max: 2 });
      this.admin.on('error', () => undefined); // an idle connection cut by a restart test: the pool makes a new one
    }
    const name = `t_${randomBytes(6).toString('hex')}`;
    await this.admin.query(`CREATE DATABASE ${name}`);
    return this.url(name, password);
  }

  /** Drops the admin connections (before a restart). */
  async dropAdmin(): Promise<void> {
    const a = this.admin;
    this.admin = undefined;
    await a?.end().catch(() => undefined);
  }
}

/** Creates and starts a new server in a directory of its own (about a second). */
async function newServer(durable: boolean): Promise<PgServer> {
  const missing = postgresMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), 'ferry-pg-'));
  if (process.getuid?.() === 0) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim();
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim();
    chownSync(dir, Number(ids), Number(gid));
  }
  const server = new PgServer(dir, await freePort(), durable);
  const init = server.ctl('initdb', ['-D', server.dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']);
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr}`);
  server.start();
  return server;
}

function removeServer(server: PgServer): void {
  server.stop('immediate');
  rmSync(server.dir, { recursive: true, force: true });
}

let shared: Promise<PgServer> | undefined;

/** The run's one server, started on first call (about a second). */
export function sharedPostgres(): Promise<PgServer> {
  shared ??= newServer(false).then((server) => {
    process.on('exit', () => removeServer(server));
    return server;
  });
  return shared;
}

/**
 * A server of the caller's own, durable (fsync, synchronous commit), for a
 * test that stops or crashes it without disturbing the tests on the shared
 * one. `remove()` stops it and deletes its files (also done at exit).
 */
export async function ownPostgres(): Promise<PgServer & { remove(): Promise<void> }> {
  const server = await newServer(true);
  let removed = false;
  const remove = async () => {
    if (removed) return;
    removed = true;
    await server.dropAdmin();
    removeServer(server);
  };
  process.on('exit', () => { if (!removed) removeServer(server); });
  return Object.assign(server, { remove });
}
