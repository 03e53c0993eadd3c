import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, signManifest } from '../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, dirReader, pushBundle } from '../../controller/src/cli/bundle-push.js';
import { buildManifest } from '../../common/src/bundle/builder.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, startController, tempDir } from '../support/fixtures.js';
import { repoRoot, run } from '../support/proc.js';
import { describeStores } from '../support/stores.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');

describeStores('pushing bundles and plans', function (store) {
  this.timeout(90_000);
  let c: Controller;
  let admin: Admin;
  const key = generateSigningKey();
  const other = generateSigningKey();
  const dir = tempDir('ferry-push-');
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, ...args, '--admin-socket', c.config.adminSocket]);
  const files = { 'bin/tool': randomFile(2), 'manifests/cm.yaml': Buffer.from('kind: ConfigMap\n') };
  const push = (b: ReturnType<typeof memBundle>) => pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
  const missingOf = async (b: ReturnType<typeof memBundle>) =>
    (await admin.call(admin.client.missingChunks, { digests: [...b.chunks.keys()] })).missing.length;

  before(async () => {
    c = await startController(await store.flags());
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    for (const k of [key, other]) await admin.call(admin.client.addSigningKey, { publicPem: k.publicPem, name: k.keyId });
    writeFileSync(join(dir, 'op.key'), key.privatePem, { mode: 0o600 });
    writeFileSync(join(dir, 'op.pub'), key.publicPem);
    writeFileSync(join(dir, 'garbage.key'), 'not a key at all\n');
    mkdirSync(join(dir, 'src', 'bin'), { recursive: true });
    writeFileSync(join(dir, 'src', 'bin', 'tool'), randomFile(1), { mode: 0o755 });
    writeFileSync(join(dir, 'plan.yaml'), 'name: idem\nsteps:\n  - id: hi\n    type: exec\n    args: { argv: ["true"] }\n');
  });
  after(async () => { admin.close(); await cleanup(c); });

  it('treats a rebuilt bundle with the same content (new createdAt, another trusted key) as a no-op that sends nothing', async () => {
    const first = memBundle('same', '1.0.0', files, key.privatePem);
    const r1 = await push(first);
    assert.equal(r1.unchanged, false);
    const rebuilt = signManifest({ ...first.manifest, createdAt: new Date(86_400_000).toISOString() }, other.privatePem);
    assert.notEqual(rebuilt.manifest, first.signed.manifest, 'the manifests differ in createdAt');
    const r2 = await pushBundle(admin, rebuilt, byDigest(async () => { throw new Error('no chunk may be read'); }), { progress: false });
    assert.equal(r2.unchanged, true);
    assert.equal(r2.bytesSent, 0);
    assert.equal(r2.info.bundleId, r1.info.bundleId, 'the stored bundle is kept');
    // A chunk the controller lost is sent again; the stored bundle still stays.
    await c.ctx.bundles.chunks.remove([...first.chunks.keys()][0]!);
    const r3 = await pushBundle(admin, rebuilt, byDigest(async (d) => first.chunks.get(d)!), { progress: false });
    assert.deepEqual([r3.unchanged, r3.chunksSent, r3.info.bundleId], [true, 1, r1.info.bundleId]);
    // The controller's commit agrees on its own (a client that skips the check).
    const stored = await c.ctx.bundles.commit(rebuilt);
    assert.equal(stored.id, r1.info.bundleId);
    const changed = signManifest({ ...first.manifest, arch: ['arm64'] }, key.privatePem);
    await assert.rejects(c.ctx.bundles.commit(changed), (e: FerryError) => e.code === ErrorCode.AlreadyExists);
  });

  it('checks the signature and the manifest before uploading, so a refused push leaves no chunks behind', async () => {
    const b = memBundle('bad', '1.0.0', { 'bin/bad': randomFile(1) }, key.privatePem);
    const tampered = { ...b.signed, manifest: b.signed.manifest.replace('"bad"', '"bax"') };
    await assert.rejects(pushBundle(admin, tampered, byDigest(async (d) => b.chunks.get(d)!), { progress: false }),
      (e: FerryError) => e.code === ErrorCode.SignatureInvalid && /altered/.test(e.message));
    assert.equal(await missingOf(b), b.chunks.size, 'no chunk of the tampered bundle was uploaded');
    const escape = memBundle('evil', '1.0.0', { '../../etc/x': randomFile(1) }, key.privatePem);
    await assert.rejects(push(escape), (e: FerryError) => e.code === ErrorCode.BundleInvalid && /nothing was sent/.test(e.message));
    assert.equal(await missingOf(escape), escape.chunks.size, 'no chunk of the invalid bundle was uploaded');
    const first = memBundle('clash', '1.0.0', files, key.privatePem);
    await push(first);
    const clash = memBundle('clash', '1.0.0', { 'bin/other': randomFile(1) }, key.privatePem);
    await assert.rejects(push(clash), (e: FerryError) => e.code === ErrorCode.AlreadyExists && /different content/.test(e.message));
    assert.equal(await missingOf(clash), clash.chunks.size, 'no chunk of the clashing bundle was uploaded');
  });

  it('ferry bundle push and plan push of the same thing again exit 0 and say nothing changed', async () => {
    const args = ['bundle', 'push', join(dir, 'src'), '--name', 'cli', '--version', '1.0.0', '--arch', 'amd64', '--key', join(dir, 'op.key')];
    const p1 = await ferry(...args);
    assert.equal(p1.code, 0, p1.stderr);
    assert.match(p1.stdout, /^pushed cli:1\.0\.0/);
    const p2 = await ferry(...args);
    assert.equal(p2.code, 0, p2.stderr);
    assert.match(p2.stdout, /cli:1\.0\.0 is already on the controller with the same content.*nothing to do/);
    const plan = join(dir, 'plan.yaml');
    const q1 = await ferry('plan', 'push', plan, '--key', join(dir, 'op.key'));
    assert.equal(q1.code, 0, q1.stderr);
    assert.match(q1.stdout, /^pushed plan idem/);
    const q2 = await ferry('plan', 'push', plan, '--key', join(dir, 'op.key'));
    assert.equal(q2.code, 0, q2.stderr);
    assert.match(q2.stdout, /plan idem is already on the controller with the same text.*nothing to do/);
    // An older text pushed again is a change: it becomes the version `ferry run idem` uses.
    writeFileSync(join(dir, 'plan2.yaml'), 'name: idem\nsteps:\n  - id: hi2\n    type: exec\n    args: { argv: ["true"] }\n');
    assert.equal((await ferry('plan', 'push', join(dir, 'plan2.yaml'), '--key', join(dir, 'op.key'))).code, 0);
    const q3 = await ferry('plan', 'push', plan, '--key', join(dir, 'op.key'));
    assert.match(q3.stdout, /^pushed plan idem/);
    assert.equal((await c.ctx.plans.require('idem')).plan.steps[0]!.id, 'hi');
  });

  it('names a wrong key file and what was expected, exit 2, instead of an OpenSSL error', async () => {
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'op.pub'), /op\.pub is a public key; signing needs the private key/],
      [join(dir, 'garbage.key'), /garbage\.key is not a PEM private key/],
      [join(dir, 'absent.key'), /signing key file .*absent\.key does not exist/],
    ];
    const plan = join(dir, 'plan.yaml');
    for (const [file, re] of cases) {
      for (const args of [['bundle', 'push', join(dir, 'src'), '--name', 'cli', '--version', '9', '--arch', 'amd64', '--key', file], ['plan', 'push', plan, '--key', file]]) {
        const r = await ferry(...args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, re);
        assert.doesNotMatch(r.stderr, /DECODER|ERR_OSSL/);
      }
    }
    const add = await ferry('key', 'add', join(dir, 'op.key'));
    assert.equal(add.code, 2, add.stderr);
    assert.match(add.stderr, /op\.key is a private key; the controller must only get the public key/);
    const addGarbage = await ferry('key', 'add', join(dir, 'garbage.key'));
    assert.equal(addGarbage.code, 2, addGarbage.stderr);
    assert.match(addGarbage.stderr, /garbage\.key is not a PEM public key/);
  });

  it('pushing a directory does not hash on the client: a file changed after the build is refused by the controller with a hint, and nothing is committed', async () => {
    const pkg = join(dir, 'changed-pkg');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    const bytes = randomFile(1);
    writeFileSync(join(pkg, 'bin', 'tool'), bytes, { mode: 0o755 });
    const m = await buildManifest(pkg, { name: 'changed', version: '1.0.0', arch: ['amd64'] });
    const flipped = Buffer.from(bytes);
    flipped[100]! ^= 0xff; // same size, other bytes: only a hash can tell
    writeFileSync(join(pkg, 'bin', 'tool'), flipped);
    await assert.rejects(pushBundle(admin, signManifest(m, key.privatePem), dirReader(pkg, m), { progress: false }),
      (e: FerryError) => e.code === ErrorCode.ChunkDigestMismatch && /nothing of changed:1\.0\.0 was committed/.test(e.message) && /changed since the manifest was built/.test(e.hint ?? ''));
    const { bundles } = await admin.call(admin.client.listBundles, {});
    assert.ok(!bundles.some((b) => b.name === 'changed'), 'nothing committed');
    // Put back, the same push goes through.
    writeFileSync(join(pkg, 'bin', 'tool'), bytes);
    const r = await pushBundle(admin, signManifest(m, key.privatePem), dirReader(pkg, m), { progress: false });
    assert.equal(r.info.name, 'changed');
  });
});
