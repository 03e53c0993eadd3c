import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/fixtures.js';
import { repoRoot, run } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');

describe('controller install-service --chunks', function () {
  this.timeout(30_000);
  const dir = tempDir('ferry-install-chunks-');
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('--dry-run shows the chunk directory passed on and writable; a chunk directory that does not exist is refused before anything is written', async () => {
    const data = join(dir, 'data');
    const shared = join(dir, 'shared-chunks');
    const dry = await run([process.execPath, ferryBin, 'controller', 'install-service', '--data', data, '--chunks', shared, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^ReadWritePaths=${shared}$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^ExecStart=.* --chunks ${shared}( |$)`, 'm'));

    const unitDir = join(dir, 'units');
    const r = await run([process.execPath, ferryBin, 'controller', 'install-service', '--data', data, '--chunks', shared, '--unit-dir', unitDir, '--no-start']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`the chunk directory ${shared} does not exist; nothing was installed`));
    assert.match(r.stderr, /mount the shared chunk storage/);
    assert.ok(!existsSync(unitDir) || readdirSync(unitDir).length === 0, 'no unit written');
    assert.ok(!existsSync(data), 'no data directory made');
  });
});
