import { join } from 'node:path';
import { silentLogger } from '../../common/src/log.js';
import type { RawConfig } from '../../controller/src/config.js';
import { SqliteDb, type Db } from '../../controller/src/store/db.js';
import { PgDb } from '../../controller/src/store/pg-db.js';
import { postgresMissing, sharedPostgres } from './postgres.js';

/**
 * The two store backends, for tests that must hold on both: `open` gives a
 * fresh, unmigrated store (SQLite in `dir`, or a new database on the run's
 * PostgreSQL server); `flags` gives startController the matching --store.
 */
export interface TestStore {
  readonly kind: 'sqlite' | 'postgres';
  open(dir: string): Promise<Db>;
  flags(): Promise<RawConfig>;
}

export const sqliteStore: TestStore = {
  kind: 'sqlite',
  open: async (dir) => new SqliteDb(join(dir, 'ferry.db')),
  flags: async () => ({}),
};

export const postgresStore: TestStore = {
  kind: 'postgres',
  open: async () => new PgDb({ url: await (await sharedPostgres()).createDatabase(), log: silentLogger() }),
  flags: async () => ({ store: await (await sharedPostgres()).createDatabase() }),
};

let warned = false;

/**
 * Declares the suite once per backend ("title [sqlite]", "title [postgres]").
 * The PostgreSQL copy is skipped, with the reason printed once, only when
 * the server binaries are not installed.
 */
export function describeStores(title: string, body: (this: Mocha.Suite, store: TestStore) => void, timeoutMs = 60_000): void {
  for (const store of [sqliteStore, postgresStore]) {
    describe(`${title} [${store.kind}]`, function () {
      this.timeout(timeoutMs);
      if (store.kind === 'postgres') {
        const missing = postgresMissing();
        if (missing) {
          if (!warned) console.warn(`  PostgreSQL store tests skipped: ${missing}`);
          warned = true;
          before(function () { this.skip(); });
        } else {
          // Started here, not in the first test: its second of start-up is not any one test's time.
          before(async () => { await sharedPostgres(); });
        }
      }
      body.call(this, store);
    });
  }
}
