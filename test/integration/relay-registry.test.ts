import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, type BundleFile } from '../../common/src/bundle/manifest.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { buildImage, ociArchive } from '../e2e/harness/oci-image.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { run } from '../support/proc.js';
import { certDir, commitImageBundle, errorCode, request, type ClientCert } from '../support/registry.js';
import { controllerChunks, enroll } from '../support/relay-agents.js';
import type { MemBundle } from '../support/bundles.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('site relays serve the registry and files endpoints from their chunk cache', function () {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  let relay: TestAgent;
  let site: TestAgent;
  const others: TestAgent[] = [];
  let port: number;
  let agentCert: ClientCert;
  let dir: string;
  let b: MemBundle;
  const key = generateSigningKey();
  // A layer large enough to span several chunks, and a file for curl.
  const hello = buildImage({ ref: 'ferry/hello:1.0', architecture: 'amd64', layers: [[{ path: 'big.bin', content: randomBytes(3 << 20) }], [{ path: 'etc/hello', content: 'hi\n' }]] });
  const kubeadm = randomBytes((2 << 20) + 12345);

  const cache = () => relay.loop.work.relay.cacheForTests!;
  const skopeo = (...args: string[]) => run(['skopeo', ...args], { timeoutMs: 60_000 });
  const curl = (...args: string[]) => run(['curl', '-sS', '--cacert', join(dir, 'ca.crt'), '--cert', join(dir, 'client.cert'), '--key', join(dir, 'client.key'), ...args]);
  const fileUrl = () => `https://127.0.0.1:${port}/files/apps/1.0/k8s/kubeadm`;
  const bundleFile = (path: string): BundleFile => b.manifest.files.find((f) => f.path === path)!;

  before(async () => {
    // No --registry-addr: the controller has no HTTPS listener, so every body below came from the relay.
    c = await startController();
    assert.equal(c.registry, undefined);
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    b = await commitImageBundle(c, 'apps', '1.0', { 'images/hello.tar': ociArchive([hello]), 'k8s/kubeadm': kubeadm }, key.privatePem);
    await admin.call(admin.client.publishBundle, { name: 'apps', version: '1.0', as: [], anonymous: false });
    relay = await enroll(c, 'gw-1', { site: 'gw' });
    site = await enroll(c, 'edge-1', { site: 'plant-7' });
    await waitFor(() => [relay, site].every((a) => a.loop.state === 'connected'), 10_000, 'connected');
    await admin.call(admin.client.enableRelay, { host: 'gw-1', serves: 'site=plant-7', cacheBytes: 0, listen: '127.0.0.1:0', advertise: '', registryListen: '127.0.0.1:0' });
    await waitFor(() => relay.loop.work.relay.registryAddress !== undefined, 10_000, 'the relay serves the registry');
    port = relay.loop.work.relay.registryForTests!.port;
    agentCert = { certPem: readFileSync(site.state.certPath, 'utf8'), keyPem: readFileSync(site.state.keyPath, 'utf8'), caPem: c.ctx.ca.certPem };
    dir = certDir(join(tempDir(), 'certs'), agentCert);
  });
  after(async () => { admin?.close(); await cleanup(c, [relay, site, ...others]); });

  it('hosts learn the relay\'s registry address over their session', async () => {
    await waitFor(() => site.loop.work.relays[0]?.registryAddress === `127.0.0.1:${port}`, 10_000, () => `registry address told: ${JSON.stringify(site.loop.work.relays)}`);
  });

  it('skopeo inspects and copies a published image through the relay; a second copy costs the uplink nothing', async () => {
    const inspect = await skopeo('inspect', '--cert-dir', dir, `docker://127.0.0.1:${port}/ferry/hello:1.0`);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.deepEqual((JSON.parse(inspect.stdout) as { Layers: string[] }).Layers, hello.layerDigests);
    const first = join(tempDir(), 'oci');
    const copy = await skopeo('copy', '--src-cert-dir', dir, `docker://127.0.0.1:${port}/ferry/hello:1.0`, `oci:${first}`);
    assert.equal(copy.code, 0, copy.stderr);
    for (const [i, d] of hello.layerDigests.entries()) assert.deepEqual(readFileSync(join(first, 'blobs', 'sha256', d.slice(7))), hello.layers[i]);
    const st = cache().stats();
    assert.ok(st.bytesFromUpstream > 3 << 20, 'the relay fetched the layer\'s chunks from upstream');
    const fetched = await controllerChunks(c);

    const second = join(tempDir(), 'oci');
    const again = await skopeo('copy', '--src-cert-dir', dir, `docker://127.0.0.1:${port}/ferry/hello:1.0`, `oci:${second}`);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(readFileSync(join(second, 'blobs', 'sha256', hello.layerDigests[0]!.slice(7))), hello.layers[0]);
    const after = cache().stats();
    assert.equal(after.bytesFromUpstream, st.bytesFromUpstream, 'no chunk fetched upstream again');
    assert.equal(after.misses, st.misses, 'every chunk a hit');
    assert.ok(after.hits > st.hits);
    assert.equal(await controllerChunks(c), fetched, 'the controller sent no chunk for the second copy');
  });

  it('curl gets a file whole and by Range, with its ETag; the chunks are shared with bundle delivery', async () => {
    const before = cache().stats().bytesFromUpstream;
    const out = join(tempDir(), 'kubeadm');
    const whole = await curl('-o', out, '-D', '-', fileUrl());
    assert.equal(whole.code, 0, whole.stderr);
    assert.match(whole.stdout, /^HTTP\/1\.1 200/);
    assert.match(whole.stdout, new RegExp(`etag: "${sha(kubeadm)}"`, 'i'));
    assert.deepEqual(readFileSync(out), kubeadm);
    const part = join(tempDir(), 'part');
    const ranged = await curl('-r', '1048000-1049999', '-o', part, '-w', '%{http_code}', fileUrl());
    assert.equal(ranged.stdout, '206', ranged.stderr);
    assert.deepEqual(readFileSync(part), kubeadm.subarray(1048000, 1050000));
    const fileBytes = bundleFile('k8s/kubeadm').chunks.reduce((n, ch) => n + ch.size, 0);
    assert.equal(cache().stats().bytesFromUpstream - before, fileBytes, 'each chunk of the file came over the uplink once');
    // The same chunks serve Chunks.Fetch: the site host's copy costs no upstream byte either.
    const chunksBefore = await controllerChunks(c);
    const msgs: string[] = [];
    for await (const ch of cache().localSource().fetch(bundleFile('k8s/kubeadm').chunks.map((x) => x.digest), new AbortController().signal)) msgs.push(ch.digest);
    assert.equal(msgs.length, bundleFile('k8s/kubeadm').chunks.length);
    assert.equal(await controllerChunks(c), chunksBefore);
  });

  it('answers unknown names, missing certificates and writes with the registry\'s JSON errors', async () => {
    const unknown = await request(port, agentCert, '/v2/nobody/here/manifests/1.0');
    assert.equal(unknown.status, 404);
    assert.equal(errorCode(unknown), 'NAME_UNKNOWN');
    const tag = await request(port, agentCert, '/v2/ferry/hello/manifests/9.9?ns=docker.io');
    assert.equal(tag.status, 404);
    assert.equal(errorCode(tag), 'MANIFEST_UNKNOWN');
    const anon = await request(port, { caPem: agentCert.caPem }, '/v2/ferry/hello/manifests/1.0?ns=docker.io');
    assert.equal(anon.status, 401);
    assert.equal(errorCode(anon), 'UNAUTHORIZED');
    const put = await request(port, agentCert, '/v2/ferry/hello/manifests/1.0', [], 'PUT');
    assert.equal(put.status, 405);
    assert.equal(errorCode(put), 'UNSUPPORTED');
    const trav = await request(port, agentCert, '/files/apps/1.0/%2e%2e/x');
    assert.equal(trav.status, 400);
    assert.equal(errorCode(trav), 'PATH_INVALID');
  });

  it('refuses a revoked agent', async () => {
    const gone = await enrollAgent(c, 'edge-9', { labels: { site: 'plant-7' }, start: false });
    others.push(gone);
    const cert: ClientCert = { certPem: readFileSync(gone.state.certPath, 'utf8'), keyPem: readFileSync(gone.state.keyPath, 'utf8'), caPem: c.ctx.ca.certPem };
    assert.equal((await request(port, cert, '/v2/ferry/hello/manifests/1.0?ns=docker.io')).status, 200);
    await admin.call(admin.client.revokeAgent, { id: gone.id });
    await waitFor(async () => (await request(port, cert, '/v2/ferry/hello/manifests/1.0?ns=docker.io')).status === 403, 10_000, 'the revoked agent is refused');
    const r = await request(port, cert, `/v2/ferry/hello/blobs/${hello.layerDigests[0]}?ns=docker.io`);
    assert.equal(r.status, 403);
    assert.equal(errorCode(r), 'DENIED');
    assert.match(JSON.parse(r.body.toString()).errors[0].message as string, /revoked/);
  });

  it('never sends a corrupt cached chunk: a bad copy is dropped and fetched again; with no good copy anywhere the answer is an error', async () => {
    const f = bundleFile('k8s/kubeadm');
    const victim = f.chunks[1]!.digest;
    const path = cache().store.pathOf(victim);
    const good = readFileSync(path);
    writeFileSync(path, Buffer.alloc(good.length, 0x5a)); // same size, already served once: only hashing finds it
    const dropped = cache().stats().droppedCorrupt;
    const out = join(tempDir(), 'kubeadm');
    const whole = await curl('-o', out, '-w', '%{http_code}', fileUrl());
    assert.equal(whole.stdout, '200', whole.stderr);
    assert.deepEqual(readFileSync(out), kubeadm, 'the right bytes, fetched again from upstream');
    assert.equal(cache().stats().droppedCorrupt, dropped + 1);

    // Now the controller has no copy either: the relay must not answer with a whole body.
    writeFileSync(path, Buffer.alloc(good.length, 0x5a));
    await c.ctx.bundles.chunks.remove(victim);
    assert.equal(existsSync(c.ctx.bundles.chunks.pathOf(victim)), false);
    const ranged = await request(port, agentCert, '/files/apps/1.0/k8s/kubeadm', [`Range: bytes=${f.chunks[0]!.size}-${f.chunks[0]!.size + 10}`]);
    assert.equal(ranged.status, 502);
    assert.equal(errorCode(ranged), 'BLOB_UNAVAILABLE');
    const full = await request(port, agentCert, '/files/apps/1.0/k8s/kubeadm');
    assert.ok(!(full.status === 200 && full.complete), 'a body missing a chunk is never a complete 200');
  });
});
