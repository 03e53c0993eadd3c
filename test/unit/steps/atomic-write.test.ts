/**
 * The one atomic write (common/src/secure-fs.ts) that agent state and every
 * writing step use: mode set whatever the umask, no temp file left on
 * failure, backups never replace each other.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic, writeFileAtomicAsync } from '../../../common/src/secure-fs.js';
import { makeBackup } from '../../../agent/src/steps/util/file-ops.js';

describe('atomic write', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ferry-atomic-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes with the given mode, creating parents with their own mode whatever the umask, sync and async alike', async () => {
    const umask = process.umask(0o077); // as the controller sets it: must not make /etc directories private
    try {
      await writes(dir);
    } finally {
      process.umask(umask);
    }
  });

  async function writes(dir: string): Promise<void> {
    writeFileAtomic(join(dir, 'state/key'), 'k');
    assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'state/key')).mode & 0o777, 0o600);
    await writeFileAtomicAsync(join(dir, 'etc/app/x.conf'), 'a=1\n', { mode: 0o640, dirMode: 0o755 });
    assert.equal(statSync(join(dir, 'etc/app')).mode & 0o777, 0o755);
    assert.equal(statSync(join(dir, 'etc/app/x.conf')).mode & 0o777, 0o640);
    await writeFileAtomicAsync(join(dir, 'etc/app/y.conf'), { copyFrom: join(dir, 'etc/app/x.conf') }, { mode: 0o644, dirMode: false });
    assert.equal(readFileSync(join(dir, 'etc/app/y.conf'), 'utf8'), 'a=1\n');
    assert.equal(statSync(join(dir, 'etc/app/y.conf')).mode & 0o777, 0o644);
    assert.deepEqual(readdirSync(join(dir, 'etc/app')).sort(), ['x.conf', 'y.conf'], 'no temp file left');
  }

  it('leaves the old file and no temp file when the write fails', async () => {
    writeFileSync(join(dir, 'f'), 'old');
    await assert.rejects(writeFileAtomicAsync(join(dir, 'f'), { copyFrom: join(dir, 'missing') }, { dirMode: false }), /ENOENT/);
    assert.equal(readFileSync(join(dir, 'f'), 'utf8'), 'old');
    assert.deepEqual(readdirSync(dir), ['f']);
  });

  it('backups keep mode and never replace an earlier backup of the same second', async () => {
    writeFileSync(join(dir, 'cfg.yaml'), 'v: 1\n', { mode: 0o600 });
    const now = new Date('2026-12-02T08:00:00Z');
    const first = await makeBackup(join(dir, 'cfg.yaml'), now);
    writeFileSync(join(dir, 'cfg.yaml'), 'v: 2\n');
    const second = await makeBackup(join(dir, 'cfg.yaml'), now);
    assert.equal(first, join(dir, 'cfg.yaml.ferry-bak-20261202T080000Z'));
    assert.equal(second, `${first}-2`);
    assert.equal(readFileSync(first, 'utf8'), 'v: 1\n');
    assert.equal(readFileSync(second, 'utf8'), 'v: 2\n');
    assert.equal(statSync(second).mode & 0o777, 0o600);
    assert.equal(readdirSync(dir).length, 3, 'no temp file left');
  });
});
