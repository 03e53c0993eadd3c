import 'reflect-metadata';
import assert from 'node:assert/strict';
import { utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { generateSigningKey, signManifest, type BundleManifest } from '../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { ChunksClient, type FetchRangesResponse, type SketchChunksResponse } from '../../common/src/gen/ferry/v1/chunks.js';
import { SKETCH_VERSION, sketchOf } from '../../common/src/bundle/sketch.js';
import { clientChannelOptions } from '../../common/src/grpc-options.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { controllerCreds } from '../../agent/src/grpc-creds.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, enrollAgent, startController, type TestAgent } from '../support/fixtures.js';
import { describeStores } from '../support/stores.js';

describeStores('bundles on the controller', function (store) {
  let c: Controller;
  let admin: Admin;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const files = { 'bin/edgecore': randomFile(3), 'images/a.tar': randomFile(5), 'manifests/x.yaml': Buffer.from('kind: ConfigMap\n') };

  before(async () => {
    c = await startController(await store.flags());
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
  });
  after(async () => { admin.close(); await cleanup(c, agents); });

  it('refuses bundles until a signing key is trusted, then pins keys for agents enrolled later', async () => {
    const b = memBundle('edge', '1.0.0', files, key.privatePem);
    await assert.rejects(pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false }),
      (e: FerryError) => e.code === ErrorCode.SignatureInvalid && /trusts no signing key/.test(e.message));
    const k = await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    assert.equal(k.keyId, key.keyId);
    const a = await enrollAgent(c, 'edge-1', { start: false });
    agents.push(a);
    assert.deepEqual(a.state.load().identity.operatorKeys, [key.publicPem]);
  });

  it('uploads only missing chunks, and a new version moves only what changed', async () => {
    const v1 = memBundle('edge', '1.0.0', files, key.privatePem);
    const r1 = await pushBundle(admin, v1.signed, byDigest(async (d) => v1.chunks.get(d)!), { progress: false });
    assert.equal(r1.chunksSent, r1.chunksTotal);
    assert.equal(r1.info.files, 3);
    const again = await pushBundle(admin, v1.signed, byDigest(async (d) => v1.chunks.get(d)!), { progress: false });
    assert.equal(again.chunksSent, 0, 'a re-push sends nothing');
    const changed = randomFile(1);
    const v2 = memBundle('edge', '1.1.0', { ...files, 'bin/edgecore': changed }, key.privatePem);
    const r2 = await pushBundle(admin, v2.signed, byDigest(async (d) => v2.chunks.get(d)!), { progress: false });
    assert.ok(r2.bytesSent <= changed.length * 1.1, `sent ${r2.bytesSent} for ${changed.length} changed bytes`);
    const { bundles } = await admin.call(admin.client.listBundles, {});
    assert.deepEqual(bundles.map((b) => `${b.name}:${b.version}`), ['edge:1.0.0', 'edge:1.1.0']);
  });

  it('refuses tampered, foreign-signed and incomplete bundles, and same name:version with other content', async () => {
    const b = memBundle('edge', '2.0.0', files, key.privatePem);
    const tampered = { ...b.signed, manifest: b.signed.manifest.replace('"edge"', '"edgx"') };
    await assert.rejects(admin.call(admin.client.commitBundle, { signed: tampered }), (e: FerryError) => e.code === ErrorCode.SignatureInvalid && /altered/.test(e.message));
    const foreign = memBundle('edge', '2.0.0', files, generateSigningKey().privatePem);
    await assert.rejects(admin.call(admin.client.commitBundle, { signed: foreign.signed }), (e: FerryError) => /does not trust/.test(e.message));
    const fresh = memBundle('edge', '3.0.0', { 'bin/new': randomFile(1) }, key.privatePem);
    await assert.rejects(admin.call(admin.client.commitBundle, { signed: fresh.signed }), (e: FerryError) => e.code === ErrorCode.BundleInvalid && /not on the controller/.test(e.message));
    const clash = memBundle('edge', '1.0.0', { 'x': Buffer.from('other') }, key.privatePem);
    await assert.rejects(pushBundle(admin, clash.signed, byDigest(async (d) => clash.chunks.get(d)!), { progress: false }), (e: FerryError) => e.code === ErrorCode.AlreadyExists);
  });

  it('refuses a signed manifest whose chunks do not produce a file\'s sha256 (the one whole-file check; agents rely on it), and keeps nothing', async () => {
    const b = memBundle('skewed', '1.0.0', files, key.privatePem);
    const m = JSON.parse(b.signed.manifest) as BundleManifest;
    const victim = m.files.find((f) => f.path === 'images/a.tar')!;
    victim.sha256 = createHash('sha256').update('something else').digest('hex');
    const signed = signManifest(m, key.privatePem);
    await assert.rejects(pushBundle(admin, signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false }),
      (e: FerryError) => e.code === ErrorCode.BundleInvalid && /file "images\/a\.tar" assembled from its chunks is \d+ bytes with sha256 [0-9a-f]{64}, but the manifest says/.test(e.message)
        && /rebuild the bundle/.test(e.hint ?? ''));
    const { bundles } = await admin.call(admin.client.listBundles, {});
    assert.ok(!bundles.some((x) => x.name === 'skewed'), 'not committed');
    // The same files under a consistent manifest commit (the chunks were fine).
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
  });

  it('a chunk damaged on the controller\'s disk is named at commit, dropped, and the next push repairs it', async () => {
    const body = { 'lib/rot.so': randomFile(5) }; // chunks are at most 4 MiB: always two or more
    const v1 = memBundle('rot', '1.0.0', body, key.privatePem);
    await pushBundle(admin, v1.signed, byDigest(async (d) => v1.chunks.get(d)!), { progress: false });
    const victim = v1.manifest.files[0]!.chunks[1]!.digest;
    const path = c.ctx.bundles.chunks.pathOf(victim);
    writeFileSync(path, Buffer.alloc(v1.chunks.get(victim)!.length, 7)); // same size, other bytes
    const v2 = memBundle('rot', '2.0.0', body, key.privatePem); // same chunks: none uploaded again
    await assert.rejects(pushBundle(admin, v2.signed, byDigest(async (d) => v2.chunks.get(d)!), { progress: false }),
      (e: FerryError) => e.code === ErrorCode.BundleInvalid && e.message.includes(`chunk ${victim} of lib/rot.so is corrupt on the controller's disk (dropped)`));
    const again = await pushBundle(admin, v2.signed, byDigest(async (d) => v2.chunks.get(d)!), { progress: false });
    assert.equal(again.chunksSent, 1, 'the dropped chunk is sent again, and the bundle commits');
  });

  it('refuses a manifest whose paths escape the bundle', async () => {
    const b = memBundle('evil', '1.0.0', { '../../etc/passwd': Buffer.from('root::0:0\n') }, key.privatePem);
    await assert.rejects(pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false }),
      (e: FerryError) => e.code === ErrorCode.BundleInvalid && /"\.\." component/.test(e.message));
  });

  it('serves chunks to agents only, verifying them on the way out', async () => {
    const v1 = memBundle('edge', '1.0.0', files, key.privatePem);
    const { keyPem, certPem, caPem } = agents[0]!.state.load();
    const client = new ChunksClient(`127.0.0.1:${c.port}`, controllerCreds(caPem, { keyPem, certPem }), clientChannelOptions({ 'grpc.max_receive_message_length': 16 << 20 }));
    const fetch = (digests: string[]) => new Promise<Map<string, Buffer>>((resolve, reject) => {
      const out = new Map<string, Buffer>();
      const s = client.fetch({ digests });
      s.on('data', (d: { digest: string; data: Buffer }) => out.set(d.digest, d.data));
      s.on('error', (e) => reject(fromServiceError(e)));
      s.on('end', () => resolve(out));
    });
    const digests = [...v1.chunks.keys()];
    const got = await fetch(digests);
    for (const d of digests) assert.ok(got.get(d)!.equals(v1.chunks.get(d)!));
    // A faulty controller disk: the chunk no longer matches its digest.
    writeFileSync(c.ctx.bundles.chunks.pathOf(digests[0]!), Buffer.from('bit rot'));
    await assert.rejects(fetch([digests[0]!]), (e: FerryError) => e.code === ErrorCode.ChunkCorrupt);
    await assert.rejects(fetch(['ab'.repeat(32)]), (e: FerryError) => e.code === ErrorCode.ChunkNotFound);
    client.close();
    const anon = new ChunksClient(`127.0.0.1:${c.port}`, controllerCreds(caPem));
    await assert.rejects(new Promise((res, rej) => { const s = anon.fetch({ digests }); s.on('data', res); s.on('error', (e) => rej(fromServiceError(e))); }),
      (e: FerryError) => e.code === ErrorCode.Unauthenticated);
    anon.close();
  });

  it('removes a bundle and collects only chunks nothing else references (and not fresh uploads)', async () => {
    // The corrupt chunk was dropped when it was detected; pushing again repairs the controller.
    const repair = memBundle('edge', '1.0.0', files, key.privatePem);
    assert.equal((await pushBundle(admin, repair.signed, byDigest(async (d) => repair.chunks.get(d)!), { progress: false })).chunksSent, 1);
    const before = await c.ctx.bundles.chunks.stats();
    const r = await admin.call(admin.client.removeBundle, { name: 'edge', version: '1.1.0', force: false });
    assert.equal(r.removed!.version, '1.1.0');
    // Chunks uploaded within the last hour may belong to a push still in flight: kept.
    assert.equal(r.chunksDeleted, 0);
    assert.equal((await c.ctx.bundles.chunks.stats()).count, before.count);

    // An hour later, a bundle whose chunks are partly shared is collected down to the shared part.
    const v3 = memBundle('edge', '1.2.0', { ...files, 'bin/edgecore': randomFile(2) }, key.privatePem);
    await pushBundle(admin, v3.signed, byDigest(async (d) => v3.chunks.get(d)!), { progress: false });
    const old = new Date(Date.now() - 2 * 3_600_000);
    for await (const d of c.ctx.bundles.chunks.list()) utimesSync(c.ctx.bundles.chunks.pathOf(d), old, old);
    const v1 = memBundle('edge', '1.0.0', files, key.privatePem);
    const only3 = [...v3.chunks.keys()].filter((d) => !v1.chunks.has(d));
    const r3 = await admin.call(admin.client.removeBundle, { name: 'edge', version: '1.2.0', force: false });
    assert.ok(r3.chunksDeleted >= only3.length, `deleted ${r3.chunksDeleted}, expected at least ${only3.length}`);
    for (const d of only3) assert.equal(await c.ctx.bundles.chunks.has(d), false);
    for (const d of v1.chunks.keys()) assert.equal(await c.ctx.bundles.chunks.has(d), true, 'a chunk still referenced by 1.0.0 was collected');
  });

  it('keeps the chunks of a bundle being served while it is removed', async () => {
    const v1 = await c.ctx.bundles.require('edge', '1.0.0');
    const release = c.ctx.bundles.lease(v1.id);
    await admin.call(admin.client.removeBundle, { name: 'edge', version: '1.0.0', force: false });
    for (const f of v1.manifest.files) for (const ch of f.chunks) assert.equal(await c.ctx.bundles.chunks.has(ch.digest), true);
    release();
  });

  it('serves sketches and byte ranges (sub-chunk delta fetch) through the same verifying read: a corrupt chunk is DATA_LOSS', async () => {
    const b = memBundle('delta', '1.0.0', { 'bin/x': randomFile(6) }, key.privatePem);
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    const { keyPem, certPem, caPem } = agents[0]!.state.load();
    const client = new ChunksClient(`127.0.0.1:${c.port}`, controllerCreds(caPem, { keyPem, certPem }), clientChannelOptions({ 'grpc.max_receive_message_length': 16 << 20 }));
    const call = <T>(start: (cb: (e: unknown, r: T) => void) => void) => new Promise<T>((res, rej) => start((e, r) => (e ? rej(fromServiceError(e)) : res(r))));
    try {
      const [d0, d1] = [...b.chunks.keys()];
      const sk = await call<SketchChunksResponse>((cb) => client.sketch({ digests: [d0!, d1!] }, cb));
      assert.equal(sk.version, SKETCH_VERSION);
      assert.deepEqual(sk.sketches.map((s) => s.digest), [d0, d1]);
      const want = sketchOf(b.chunks.get(d0!)!);
      assert.deepEqual(sk.sketches[0]!.lengths, want.lengths);
      assert.ok(Buffer.from(sk.sketches[0]!.hashes).equals(want.hashes));
      const r = await call<FetchRangesResponse>((cb) => client.fetchRanges({ digest: d0!, ranges: [{ offset: 10, length: 100 }, { offset: 5000, length: 7 }] }, cb));
      const chunk = b.chunks.get(d0!)!;
      assert.ok(Buffer.from(r.data).equals(Buffer.concat([chunk.subarray(10, 110), chunk.subarray(5000, 5007)])));
      await assert.rejects(call((cb) => client.fetchRanges({ digest: d0!, ranges: [{ offset: chunk.length - 1, length: 2 }] }, cb)), (e: FerryError) => e.code === ErrorCode.InvalidArgument);
      // Bit rot on the controller disk: refused with DATA_LOSS, as Fetch does, and the chunk dropped.
      writeFileSync(c.ctx.bundles.chunks.pathOf(d1!), Buffer.from('bit rot'));
      c.ctx.bundles.served.forget();
      await assert.rejects(call((cb) => client.fetchRanges({ digest: d1!, ranges: [{ offset: 0, length: 3 }] }, cb)), (e: FerryError) => e.code === ErrorCode.ChunkCorrupt);
      await assert.rejects(call((cb) => client.sketch({ digests: ['ab'.repeat(32)] }, cb)), (e: FerryError) => e.code === ErrorCode.ChunkNotFound);
    } finally {
      client.close();
    }
  });
});
