import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, startController, tempDir } from '../support/fixtures.js';

/** Regular files under `dir`, recursively (what a failed push may have left behind). */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

// The controller's data directory on a small tmpfs: a push that does not fit
// must fail as DISK_FULL with what to do, leave nothing half-written, and
// leave the controller serving; after space is freed the same push succeeds.
describe('a controller whose disk fills up during a push', function () {
  this.timeout(60_000);
  const mnt = tempDir('ferry-small-disk-');
  let mounted = false;
  let c: Controller | undefined;
  let admin: Admin | undefined;
  const key = generateSigningKey();

  before(function () {
    if (process.getuid?.() !== 0) { console.log('      SKIP: mounting a small tmpfs needs root'); this.skip(); }
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m,mode=0700', 'ferry-test', mnt]);
    mounted = true;
  });
  after(async () => {
    admin?.close();
    await cleanup(c);
    if (mounted) execFileSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  it('refuses with DISK_FULL, keeps no partial chunk, keeps serving, and takes the push once there is room', async () => {
    const data = join(mnt, 'data');
    mkdirSync(data, { mode: 0o700 });
    c = await startController({}, data);
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    const ballast = join(mnt, 'ballast');
    execFileSync('dd', ['if=/dev/zero', `of=${ballast}`, 'bs=1M', 'count=6'], { stdio: 'ignore' });
    const big = memBundle('big', '1.0.0', { 'images/a.tar': randomFile(4), 'bin/b': randomFile(4) }, key.privatePem);
    const push = () => pushBundle(admin!, big.signed, byDigest(async (d) => big.chunks.get(d)!), { progress: false });
    await assert.rejects(push(), (e: FerryError) => e.code === ErrorCode.DiskFull && /disk is full/.test(e.message) && /free space/.test(e.hint ?? ''));
    assert.deepEqual(files(data).filter((f) => /\.tmp|\.part|incoming/.test(f)), [], 'no partial chunk file left');
    const { bundles } = await admin.call(admin.client.listBundles, {});
    assert.deepEqual(bundles, [], 'the bundle is not listed');
    assert.ok((await admin.call(admin.client.listAgents, { selector: '', includeRevoked: false })).agents, 'the controller still answers');
    rmSync(ballast);
    const r = await push();
    assert.equal(r.info.name, 'big');
  });
});
