import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadControllerConfig } from '../../../controller/src/config.js';
import { numberPlaceholders } from '../../../controller/src/store/placeholders.js';
import { redactStoreUrl } from '../../../controller/src/store/store-url.js';

describe('store settings and SQL for PostgreSQL', () => {
  it('numbers bare ? placeholders, not those in literals, quoted names or comments', () => {
    assert.equal(numberPlaceholders('SELECT a FROM t WHERE b = ? AND c IN (?, ?)'), 'SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)');
    assert.equal(numberPlaceholders(`SELECT '?', 'it''s ?', "col?" FROM t WHERE x = ? -- why?\n AND y = ? /* or ? */`),
      `SELECT '?', 'it''s ?', "col?" FROM t WHERE x = $1 -- why?\n AND y = $2 /* or ? */`);
    assert.equal(numberPlaceholders('UPDATE t SET v = ?'), numberPlaceholders('UPDATE t SET v = ?'), 'cached: the same text each time');
  });

  it('hides the password wherever the URL is shown', () => {
    assert.equal(redactStoreUrl('postgres://ferry:s3cr@t@db:5432/ferry'), 'postgres://ferry:***@db:5432/ferry');
    assert.equal(redactStoreUrl('postgresql://ferry:pw@db/ferry?sslmode=require&password=pw2'), 'postgresql://ferry:***@db/ferry?sslmode=require&password=***');
    assert.equal(redactStoreUrl('postgres://db/ferry'), 'postgres://db/ferry');
  });

  it('takes --store from flags, FERRY_STORE or the file, and refuses what is not sqlite or postgres:// without echoing the secret', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-cfg-'));
    const file = join(dir, 'ferry.yaml');
    writeFileSync(file, 'store: postgres://a:filepw@db1:5432/ferry\n');
    assert.equal(loadControllerConfig({}, undefined, {}).store.kind, 'sqlite');
    const fromFile = loadControllerConfig({}, file, {}).store;
    assert.deepEqual(fromFile, { kind: 'postgres', url: 'postgres://a:filepw@db1:5432/ferry', display: 'postgres://a:***@db1:5432/ferry' });
    assert.equal(loadControllerConfig({}, file, { FERRY_STORE: 'postgres://b@db2/ferry' }).store.display, 'postgres://b@db2/ferry');
    assert.equal(loadControllerConfig({ store: 'sqlite' }, file, { FERRY_STORE: 'postgres://b@db2/ferry' }).store.kind, 'sqlite');
    assert.throws(() => loadControllerConfig({ store: 'mysql://root:topsecret@db/ferry' }, undefined, {}), (e: Error) => {
      assert.match(e.message, /store "mysql:\/\/root:\*\*\*@db\/ferry" has scheme mysql/);
      assert.doesNotMatch(e.message, /topsecret/);
      return true;
    });
    assert.throws(() => loadControllerConfig({ store: 'postgres://u:pw@db' }, undefined, {}), /names no database/);
  });
});
