import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { buildImage, dockerArchive, ociArchive } from '../e2e/harness/oci-image.js';
import { cleanup, enrollAgent, startController, tempDir, type TestAgent } from '../support/fixtures.js';
import { repoRoot, run } from '../support/proc.js';
import { assertConforms, documentedKinds } from '../support/json-docs.js';
import { jsonLines } from '../support/json-lines.js';
import {
  certDir, commitImageBundle, errorCode, multiPlatformTar, registryCounts, request, type ClientCert, type MultiImage,
} from '../support/registry.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('registry: pulls by real clients (skopeo) and the pull API', function () {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  let port: number;
  let agentCert: ClientCert;
  let skopeoCerts: string;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  // One image with a layer that always spans at least three chunks: chunks are at most 4 MiB
  // (fastcdc.ts), so 9 MiB cannot fit in two, whatever the random bytes.
  const hello = buildImage({ ref: 'ferry/hello:1.0', architecture: 'amd64', layers: [[{ path: 'big.bin', content: randomBytes(9 << 20) }], [{ path: 'etc/hello', content: 'hi\n' }]] });
  const other = buildImage({ ref: 'quay.io/ferry/hello:1.0', architecture: 'amd64', layers: [[{ path: 'etc/other', content: 'other\n' }]] });
  const legacy = buildImage({ ref: 'quay.io/coreos/etcd:v3.5.9', architecture: 'amd64', layers: [[{ path: 'usr/bin/etcd', content: randomBytes(4096) }]] });
  let pause: MultiImage;
  let dns: MultiImage;

  const skopeo = (...args: string[]) => run(['skopeo', ...args], { timeoutMs: 60_000 });
  const ref = (name: string) => `docker://127.0.0.1:${port}/${name}`;

  before(async () => {
    c = await startController({ 'registry-addr': '127.0.0.1:0' });
    port = c.registry!.port;
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    const a = await enrollAgent(c, 'puller', { start: false });
    agents.push(a);
    agentCert = { certPem: readFileSync(a.state.certPath, 'utf8'), keyPem: readFileSync(a.state.keyPath, 'utf8'), caPem: c.ctx.ca.certPem };
    skopeoCerts = certDir(join(tempDir(), 'certs'), agentCert);
    pause = multiPlatformTar('registry.k8s.io/pause:3.9', [
      { ref: 'x', architecture: 'amd64', layers: [[{ path: 'pause', content: randomBytes(2048) }]] },
      { ref: 'x', architecture: 'arm64', layers: [[{ path: 'pause', content: randomBytes(2048) }]] },
    ]);
    dns = multiPlatformTar('registry.k8s.io/coredns/coredns:v1.11.1', [
      { ref: 'x', architecture: 'amd64', layers: [[{ path: 'coredns', content: randomBytes(1024) }]] },
      { ref: 'x', architecture: 'arm64', layers: [[{ path: 'coredns', content: randomBytes(1024) }]] },
    ], { docker: true });
    await commitImageBundle(c, 'apps', '1.0', {
      'images/hello.tar': ociArchive([hello]), 'images/pause.tar': pause.tar, 'images/coredns.tar': dns.tar, 'images/etcd.tar': dockerArchive([legacy]),
    }, key.privatePem);
    await commitImageBundle(c, 'side', '1.0', { 'images/other.tar': ociArchive([other]) }, key.privatePem);
    await admin.call(admin.client.publishBundle, { name: 'apps', version: '1.0', as: [], anonymous: false });
    await admin.call(admin.client.publishBundle, {
      name: 'side', version: '1.0', anonymous: true,
      as: ['quay.io/ferry/hello:1.0', 'quay.io/ferry/hello:1.0=sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8',
        ...['b', 'a', 'c'].map((t) => `quay.io/ferry/hello:1.0=docker.io/ferry/tags:${t}`)],
    });
  });
  after(async () => { admin.close(); await cleanup(c, agents); });

  it('`ferry registry ls --json` prints one documented publication record per published bundle', async () => {
    const r = await run([process.execPath, join(repoRoot(), 'bin', 'ferry.js'), '--admin-socket', c.config.adminSocket, 'registry', 'ls', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const recs = jsonLines<{ name: string; tags: object[] }>(r.stdout);
    const docs = documentedKinds();
    assertConforms(docs, 'publication', recs);
    assertConforms(docs, 'publication.tag', recs.flatMap((p) => p.tags));
    assert.deepEqual(recs.map((p) => p.name).sort(), ['apps', 'side']);
  });

  it('skopeo inspect sees the single- and multi-platform images with their stored digests', async () => {
    const single = await skopeo('inspect', '--cert-dir', skopeoCerts, ref('ferry/hello:1.0'));
    assert.equal(single.code, 0, single.stderr);
    assert.equal(JSON.parse(single.stdout).Digest, hello.manifestDigest);
    const raw = await skopeo('inspect', '--raw', '--cert-dir', skopeoCerts, ref('registry.k8s.io/pause:3.9'));
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(sha(Buffer.from(raw.stdout)), pause.indexDigest, 'the index bytes exactly as stored (pretty-printed in the tar)');
    const arm = await skopeo('inspect', '--override-arch', 'arm64', '--cert-dir', skopeoCerts, ref('pause:3.9'));
    assert.equal(arm.code, 0, arm.stderr);
    assert.equal(JSON.parse(arm.stdout).Architecture, 'arm64');
  });

  it('skopeo copy of a single-platform image to an OCI layout gets every blob intact', async () => {
    const dir = join(tempDir(), 'hello');
    const r = await skopeo('copy', '--src-cert-dir', skopeoCerts, ref('ferry/hello:1.0'), `oci:${dir}`);
    assert.equal(r.code, 0, r.stderr);
    for (const d of [hello.configDigest, ...hello.layerDigests]) assert.ok(existsSync(join(dir, 'blobs/sha256', d.slice(7))), d);
    const idx = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
    assert.equal(idx.manifests[0].digest, hello.manifestDigest);
  });

  it('skopeo copy --all of a multi-platform image (OCI index and docker manifest list) gets every platform', async () => {
    for (const [name, img] of [['registry.k8s.io/pause:3.9', pause], ['registry.k8s.io/coredns/coredns:v1.11.1', dns]] as const) {
      const raw = await skopeo('inspect', '--raw', '--cert-dir', skopeoCerts, ref(name));
      assert.equal(sha(Buffer.from(raw.stdout)), img.indexDigest, `${name}: index bytes as stored`);
      const dir = join(tempDir(), 'multi');
      const r = await skopeo('copy', '--all', '--src-cert-dir', skopeoCerts, ref(name), `oci:${dir}`);
      assert.equal(r.code, 0, r.stderr);
      const idx = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
      // An OCI index is copied unchanged; skopeo itself converts a docker manifest list for an oci: destination.
      if (img === pause) assert.equal(idx.manifests[0].digest, img.indexDigest, name);
      for (const i of img.images) for (const d of [i.configDigest, ...i.layerDigests]) assert.ok(existsSync(join(dir, 'blobs/sha256', d.slice(7))), `${name} ${d}`);
    }
  });

  it('serves a docker-archive under the derived manifest whose digest the bundle records', async () => {
    const b = await admin.call(admin.client.getBundle, { name: 'apps', version: '1.0' });
    const recorded = (JSON.parse(b.signed!.manifest) as { images: Array<{ refs: string[]; manifestDigest: string }> }).images
      .find((i) => i.refs.includes('quay.io/coreos/etcd:v3.5.9'))!.manifestDigest;
    const r = await skopeo('inspect', '--cert-dir', skopeoCerts, ref('quay.io/coreos/etcd:v3.5.9'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).Digest, recorded);
    const dir = join(tempDir(), 'etcd');
    const cp = await skopeo('copy', '--src-cert-dir', skopeoCerts, ref('quay.io/coreos/etcd:v3.5.9'), `oci:${dir}`);
    assert.equal(cp.code, 0, cp.stderr);
  });

  it('HEAD and GET of manifests carry the digest, exact length and stored media type', async () => {
    const head = await request(port, agentCert, '/v2/registry.k8s.io/pause/manifests/3.9', [], 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], pause.indexDigest);
    assert.equal(Number(head.headers['content-length']), pause.index.length);
    assert.equal(head.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
    assert.equal(head.body.length, 0);
    const child = await request(port, agentCert, `/v2/pause/manifests/${sha(pause.manifests[1]!)}?ns=registry.k8s.io`);
    assert.equal(child.status, 200);
    assert.ok(child.body.equals(pause.manifests[1]!));
    const ping = await request(port, agentCert, '/v2/');
    assert.equal(ping.status, 200);
    assert.equal(ping.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('names: ns, the Host header and --as keep same-path images of different registries apart', async () => {
    const dockerHub = await request(port, agentCert, '/v2/ferry/hello/manifests/1.0?ns=docker.io', [], 'HEAD');
    const quay = await request(port, agentCert, '/v2/ferry/hello/manifests/1.0?ns=quay.io', [], 'HEAD');
    const bare = await request(port, agentCert, '/v2/ferry/hello/manifests/1.0', [], 'HEAD');
    assert.equal(dockerHub.headers['docker-content-digest'], hello.manifestDigest);
    assert.equal(quay.headers['docker-content-digest'], other.manifestDigest);
    assert.equal(bare.headers['docker-content-digest'], hello.manifestDigest, 'no ns: docker.io first');
    const sea = await request(port, agentCert, '/v2/sealerio/lvscare/manifests/v1.1.3-beta.8?ns=sea.hub:5000', [], 'HEAD');
    assert.equal(sea.headers['docker-content-digest'], other.manifestDigest);
    // A host whose /etc/hosts pins sea.hub to the controller sends Host: sea.hub:5000 and no ns.
    const pinned = await request(port, agentCert, '/v2/sealerio/lvscare/manifests/v1.1.3-beta.8', ['Host: sea.hub:5000'], 'HEAD');
    assert.equal(pinned.status, 200);
    const viaSkopeo = await skopeo('inspect', '--cert-dir', skopeoCerts, ref('sealerio/lvscare:v1.1.3-beta.8'));
    assert.equal(JSON.parse(viaSkopeo.stdout).Digest, other.manifestDigest, viaSkopeo.stderr);
  });

  it('a digest is served only under the repositories it was published in', async () => {
    const otherLayer = other.layerDigests[0]!;
    assert.equal((await request(port, agentCert, `/v2/ferry/hello/blobs/${otherLayer}?ns=quay.io`, [], 'HEAD')).status, 200);
    const wrongRepo = await request(port, agentCert, `/v2/ferry/hello/blobs/${otherLayer}?ns=docker.io`);
    assert.equal(wrongRepo.status, 404);
    assert.equal(errorCode(wrongRepo), 'BLOB_UNKNOWN');
    const wrongManifest = await request(port, agentCert, `/v2/ferry/hello/manifests/${other.manifestDigest}?ns=docker.io`);
    assert.equal(wrongManifest.status, 404);
    assert.equal(errorCode(wrongManifest), 'MANIFEST_UNKNOWN');
  });

  it('blobs: Range gives 206 with Content-Range and exact bytes, across chunk boundaries; bad ranges are 416 or the full blob', async () => {
    const layer = hello.layers[0]!;
    const tar = (await c.ctx.bundles.get('apps', '1.0'))!.manifest.files.find((f) => f.path === 'images/hello.tar')!;
    assert.ok(tar.chunks.length >= 3, `the layer spans chunks (${tar.chunks.length})`);
    const path = `/v2/ferry/hello/blobs/${hello.layerDigests[0]}`;
    const full = await request(port, agentCert, path);
    assert.equal(full.status, 200);
    assert.ok(full.body.equals(layer));
    assert.equal(full.headers['docker-content-digest'], hello.layerDigests[0]);
    for (const [start, end] of [[0, 0], [100, 199], [layer.length - 300_000, layer.length - 1], [1_000_000, 2_500_000]] as const) {
      const r = await request(port, agentCert, path, [`Range: bytes=${start}-${end}`]);
      assert.equal(r.status, 206);
      assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${layer.length}`);
      assert.ok(r.body.equals(layer.subarray(start, end + 1)), `bytes ${start}-${end}`);
    }
    const resume = await request(port, agentCert, path, ['Range: bytes=2000000-']);
    assert.equal(resume.status, 206);
    assert.ok(resume.body.equals(layer.subarray(2_000_000)));
    const suffix = await request(port, agentCert, path, ['Range: bytes=-10']);
    assert.ok(suffix.body.equals(layer.subarray(layer.length - 10)));
    const past = await request(port, agentCert, path, [`Range: bytes=${layer.length}-`]);
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], `bytes */${layer.length}`);
    assert.equal(errorCode(past), 'RANGE_INVALID');
    for (const bad of ['bytes=0-1,5-6', 'bytes=abc', 'items=0-5', 'bytes=9-3', 'bytes=']) {
      const r = await request(port, agentCert, path, [`Range: ${bad}`]);
      assert.equal(r.status, 200, bad);
      assert.ok(r.body.equals(layer), `${bad}: the whole blob`);
    }
  });

  it('tags/list is lexical and paginates with n, last and Link', async () => {
    const all = JSON.parse((await request(port, agentCert, '/v2/ferry/tags/tags/list')).body.toString());
    assert.deepEqual(all, { name: 'ferry/tags', tags: ['a', 'b', 'c'] });
    const p1 = await request(port, agentCert, '/v2/ferry/tags/tags/list?n=2');
    assert.deepEqual(JSON.parse(p1.body.toString()).tags, ['a', 'b']);
    assert.equal(p1.headers['link'], '</v2/ferry/tags/tags/list?n=2&last=b>; rel="next"');
    const p2 = await request(port, agentCert, '/v2/ferry/tags/tags/list?n=2&last=b');
    assert.deepEqual(JSON.parse(p2.body.toString()).tags, ['c']);
    assert.equal(p2.headers['link'], undefined);
    const bad = await request(port, agentCert, '/v2/ferry/tags/tags/list?n=-1');
    assert.equal(bad.status, 400);
    assert.equal(errorCode(bad), 'PAGINATION_NUMBER_INVALID');
  });

  it('unknown repository, tag and digest are 404 with the spec codes, as JSON', async () => {
    const cases: Array<[string, string]> = [
      ['/v2/nope/nope/manifests/1.0', 'NAME_UNKNOWN'],
      ['/v2/ferry/hello/manifests/9.9', 'MANIFEST_UNKNOWN'],
      [`/v2/ferry/hello/manifests/sha256:${'0'.repeat(64)}`, 'MANIFEST_UNKNOWN'],
      [`/v2/ferry/hello/blobs/sha256:${'0'.repeat(64)}`, 'BLOB_UNKNOWN'],
      ['/v2/ferry/hello/blobs/sha256:xyz', 'DIGEST_INVALID'],
      ['/v2/ferry/hello/manifests/bad!tag', 'TAG_INVALID'],
    ];
    for (const [path, code] of cases) {
      const r = await request(port, agentCert, path);
      assert.ok(r.status >= 400 && r.status < 500, `${path}: ${r.status}`);
      assert.equal(errorCode(r), code, path);
    }
  });

  it('refuses traversal, encoded slashes, NUL, writes and oversized headers with JSON errors', async () => {
    const hostile = [
      '/v2/../ferry/hello/manifests/1.0', '/v2/ferry/%2e%2e/hello/manifests/1.0', '/v2/ferry%2fhello/manifests/1.0',
      '/v2/ferry/hello%00/manifests/1.0', '/v2/Ferry/Hello/manifests/1.0', '/v2/ferry/hello/manifests/..%2f..%2fetc',
    ];
    for (const path of hostile) {
      const r = await request(port, agentCert, path);
      assert.equal(r.status, 400, `${path}: ${r.status} ${r.body.toString()}`);
      assert.ok(['NAME_INVALID', 'PATH_INVALID', 'TAG_INVALID'].includes(errorCode(r)), path);
    }
    const rawNul = await request(port, agentCert, '/v2/ferry/hello\0/manifests/1.0');
    assert.equal(rawNul.status, 400);
    errorCode(rawNul);
    const put = await request(port, agentCert, '/v2/ferry/hello/manifests/1.0', ['Content-Length: 0'], 'PUT');
    assert.equal(put.status, 405);
    assert.equal(errorCode(put), 'UNSUPPORTED');
    const big = await request(port, agentCert, '/v2/', [`X-Pad: ${'a'.repeat(20_000)}`]);
    assert.equal(big.status, 431);
    assert.equal(errorCode(big), 'HEADERS_TOO_LARGE');
  });

  it('anonymous pull only where it was allowed', async () => {
    const anon = { caPem: c.ctx.ca.certPem };
    const open = await request(port, anon, '/v2/ferry/hello/manifests/1.0?ns=quay.io');
    assert.equal(open.status, 200, 'side:1.0 was published with --anonymous');
    const closed = await request(port, anon, '/v2/ferry/hello/manifests/1.0?ns=docker.io');
    assert.equal(closed.status, 401);
    assert.equal(errorCode(closed), 'UNAUTHORIZED');
    const r = await skopeo('inspect', '--tls-verify=true', '--cert-dir', certDir(join(tempDir(), 'anon'), anon), ref('sealerio/lvscare:v1.1.3-beta.8'));
    assert.equal(r.code, 0, r.stderr);
  });

  it('publishing is atomic: a partial multi-platform export is refused and no tag of it resolves', async () => {
    const partial = multiPlatformTar('registry.k8s.io/partial:1.0', [
      { ref: 'x', architecture: 'amd64', layers: [[{ path: 'a', content: 'a' }]] },
      { ref: 'x', architecture: 'arm64', layers: [[{ path: 'b', content: 'b' }]] },
    ], { omit: 1 });
    // A bundle may hold a partial export (inspection can skip absent platforms); the registry must not serve it.
    await assert.rejects(commitImageBundle(c, 'partial', '1.0', { 'images/p.tar': partial.tar }, key.privatePem)
      .then(() => admin.call(admin.client.publishBundle, { name: 'partial', version: '1.0', as: [], anonymous: false })),
    (e: FerryError) => /not in the tar|IMAGE_BLOB_MISSING/.test(`${e.code} ${e.message}`));
    const r = await request(port, agentCert, '/v2/registry.k8s.io/partial/manifests/1.0');
    assert.equal(r.status, 404);
    assert.equal(errorCode(r), 'NAME_UNKNOWN');
  });

  it('refuses a gzip-compressed image tar at publish, saying what to do', async () => {
    const { gzipSync } = await import('node:zlib');
    await commitImageBundle(c, 'gz', '1.0', { 'images/hello.tar.gz': gzipSync(ociArchive([hello])) }, key.privatePem);
    await assert.rejects(admin.call(admin.client.publishBundle, { name: 'gz', version: '1.0', as: [], anonymous: false }),
      (e: FerryError) => e.code === ErrorCode.InvalidArgument && /gzip-compressed/.test(e.message) && /uncompressed/.test(e.hint ?? e.message));
  });

  it('counts pulls and refusals on /metrics, once per response', async () => {
    const before = await registryCounts(c);
    const manifest = await request(port, agentCert, '/v2/ferry/hello/manifests/1.0?ns=docker.io');
    assert.equal(manifest.status, 200);
    const ranged = await request(port, agentCert, `/v2/ferry/hello/blobs/${hello.layerDigests[0]}?ns=docker.io`, ['Range: bytes=0-99']);
    assert.equal(ranged.status, 206);
    assert.equal((await request(port, agentCert, `/v2/ferry/hello/blobs/sha256:${'0'.repeat(64)}?ns=docker.io`)).status, 404);
    assert.equal((await request(port, { caPem: agentCert.caPem }, '/v2/ferry/hello/manifests/1.0?ns=docker.io')).status, 401);
    const after = await registryCounts(c);
    const delta = (series: string) => after.get(series) - before.get(series);
    assert.equal(delta('ferry_registry_requests_total{kind="manifest",code="200"}'), 1);
    assert.equal(delta('ferry_registry_requests_total{kind="blob",code="206"}'), 1);
    assert.equal(delta('ferry_registry_bytes_served_total{kind="manifest"}'), manifest.body.length);
    assert.equal(delta('ferry_registry_bytes_served_total{kind="blob"}'), 100);
    assert.equal(delta('ferry_registry_errors_total{code="BLOB_UNKNOWN"}'), 1);
    assert.equal(delta('ferry_registry_errors_total{code="UNAUTHORIZED"}'), 1);
    // Everything the suite pulled before this test is there too: skopeo's copies moved megabytes of blobs.
    assert.ok(after.get('ferry_registry_bytes_served_total{kind="blob"}') > 3 << 20);
  });
});
