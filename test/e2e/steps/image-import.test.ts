/**
 * image.import against the real containerd + ctr of a simulated host, with OCI and
 * docker-archive tars the test builds: check mode, import, idempotency by digest (not name),
 * rewrite to a local registry name, a damaged tar (rejected before ctr runs), a tar ctr itself
 * rejects half-way (refs put back), globs, and containerd not reachable. Skips when not root.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Cluster, buildImage, ensurePrereqs, ociArchive, sha256, writeDockerArchive, writeOciArchive,
  type BuiltImage, type Host, type ImageSpec,
} from '../harness/index.js';
import { runStep, summary } from './step-host.js';

const BUNDLE = '/var/lib/ferry/bundles/kubeedge';
const spec = (ref: string, text: string): ImageSpec => ({
  ref, layers: [[{ path: 'etc/ferry/hello.txt', content: text }, { path: 'usr/local/bin/hello', content: '#!/bin/sh\necho hi\n', mode: 0o755 }]],
  config: { Cmd: ['/usr/local/bin/hello'] },
});

/** An image whose layer claims gzip but is not: digests are right, so only ctr's unpack can notice. */
function badLayerImage(ref: string): BuiltImage {
  const img = buildImage(spec(ref, 'bad\n'));
  const layer = Buffer.from('this is not a gzip stream\n'.repeat(10));
  const manifest = JSON.parse(img.manifest.toString()) as { layers: Array<{ digest: string; size: number }> };
  manifest.layers[0] = { ...manifest.layers[0]!, digest: sha256(layer), size: layer.length };
  const m = Buffer.from(JSON.stringify(manifest));
  return { ...img, layers: [layer], layerDigests: [sha256(layer)], manifest: m, manifestDigest: sha256(m) };
}

describe('e2e steps: image.import on a simulated host with containerd', function () {
  this.timeout(240_000);
  let cluster: Cluster | undefined;
  let h: Host;
  const tmp = mkdtempSync(join(tmpdir(), 'ferry-image-import-'));
  let oci: BuiltImage[] = [];
  let dock: BuiltImage[] = [];
  const bundles = { kubeedge: BUNDLE };
  const args = (extra: Record<string, unknown> = {}) => ({ bundle: 'kubeedge', images: ['images/*.tar'], ...extra });
  const ls = async () => (await h.execOk(['ctr', '-n', 'k8s.io', 'images', 'ls'])).split('\n').slice(1).filter(Boolean)
    .map((l) => l.split(/\s+/).slice(0, 3).join(' ')).sort();
  const digestOf = async (ref: string) => (await ls()).find((l) => l.startsWith(`${ref} `))?.split(' ')[2];

  before(async function () {
    this.timeout(600_000);
    const pre = await ensurePrereqs();
    if (!pre.ok) {
      console.log(`      SKIP image.import e2e: ${pre.skipReason}`);
      this.skip();
    }
    const t0 = Date.now();
    cluster = await Cluster.create({ hosts: 1 });
    h = cluster.host('h1');
    await h.enableContainerd();
    console.log(`      host with containerd up in ${Date.now() - t0} ms`);
    oci = writeOciArchive(join(tmp, 'cloudcore.tar'), spec('docker.io/kubeedge/cloudcore:v1.19.0', 'cloudcore\n'), spec('docker.io/kubeedge/admission:v1.19.0', 'admission\n'));
    dock = writeDockerArchive(join(tmp, 'iptables-manager.tar'), spec('kubeedge/iptables-manager:v1.19.0', 'iptables-manager\n'));
    for (const f of ['cloudcore.tar', 'iptables-manager.tar']) await h.copyIn(join(tmp, f), `${BUNDLE}/images/${f}`);
  });

  after(async () => {
    await cluster?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('check mode lists what would be imported and imports nothing', async () => {
    const r = await runStep(h, 'image.import', args(), { check: true, bundles });
    console.log(summary('check', r));
    assert.equal(r.outcome.status, 'changed');
    assert.match(r.outcome.diff!, /\+ import kubeedge:images\/cloudcore\.tar\n {4}docker\.io\/kubeedge\/cloudcore:v1\.19\.0 [0-9a-f]{12} linux\//);
    assert.match(r.outcome.diff!, /\+ import kubeedge:images\/iptables-manager\.tar\n {4}docker\.io\/kubeedge\/iptables-manager:v1\.19\.0/);
    assert.deepEqual(await ls(), []);
  });

  it('imports an OCI and a docker-archive tar; a second run is unchanged', async () => {
    const r = await runStep(h, 'image.import', args(), { bundles });
    console.log(summary('import', r));
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    assert.match(r.outcome.message, /imported 2 tar\(s\), verified 3 ref\(s\) in containerd at \/run\/containerd\/containerd\.sock \(namespace k8s\.io\)/);
    for (const img of oci) assert.equal(await digestOf(img.ref), img.manifestDigest);
    assert.ok(await digestOf(dock[0]!.ref), `${dock[0]!.ref} not imported`);
    const again = await runStep(h, 'image.import', args(), { bundles });
    console.log(summary('again', again));
    assert.equal(again.outcome.status, 'unchanged', again.outcome.message);
    assert.equal((await runStep(h, 'image.import', args(), { check: true, bundles })).outcome.status, 'unchanged');
  });

  it('re-tags refs for a local registry (rewrite), idempotently', async () => {
    const rewrite = [{ from: 'docker.io/kubeedge/', to: 'sea.hub:5000/kubeedge/' }];
    const r = await runStep(h, 'image.import', args({ rewrite }), { bundles });
    console.log(summary('rewrite', r));
    assert.equal(r.outcome.status, 'changed');
    assert.match(r.outcome.message, /imported 0 tar\(s\) \(2 already present\), tagged 3 ref\(s\), verified 6 ref\(s\)/);
    assert.equal(await digestOf('sea.hub:5000/kubeedge/cloudcore:v1.19.0'), oci[0]!.manifestDigest);
    assert.equal(await digestOf('sea.hub:5000/kubeedge/iptables-manager:v1.19.0'), await digestOf(dock[0]!.ref));
    assert.equal((await runStep(h, 'image.import', args({ rewrite }), { bundles })).outcome.status, 'unchanged');
  });

  it('rejects a damaged tar before ctr runs, leaving containerd as it was', async () => {
    const whole = readFileSync(join(tmp, 'cloudcore.tar'));
    writeFileSync(join(tmp, 'truncated.tar'), whole.subarray(0, Math.floor(whole.length * 0.6)));
    await h.copyIn(join(tmp, 'truncated.tar'), '/root/broken/truncated.tar');
    const before = await ls();
    const r = await runStep(h, 'image.import', { files: ['/root/broken/truncated.tar'] });
    console.log(summary('truncated tar', r));
    assert.equal(r.outcome.status, 'failed');
    assert.equal(r.outcome.errorCode, 'STEP_IMAGE_TAR_INVALID');
    assert.match(r.outcome.message, /^\/root\/broken\/truncated\.tar is not a usable image tar: .*; nothing was imported\. Next: /);
    assert.deepEqual(await ls(), before);
  });

  it('puts refs back when ctr fails half-way, and includes ctr\'s stderr', async () => {
    // The bad tar re-uses cloudcore's tag (an "upgrade") and adds a new name: both must be undone.
    writeFileSync(join(tmp, 'bad.tar'), ociArchive([badLayerImage('docker.io/kubeedge/cloudcore:v1.19.0'), badLayerImage('docker.io/kubeedge/newthing:v1')]));
    await h.copyIn(join(tmp, 'bad.tar'), '/root/broken/bad.tar');
    const before = await ls();
    const r = await runStep(h, 'image.import', { files: ['/root/broken/bad.tar'] });
    console.log(summary('ctr fails', r));
    console.log(r.outcome.message.replace(/^/gm, '        | '));
    assert.equal(r.outcome.status, 'failed');
    assert.equal(r.outcome.errorCode, 'STEP_COMMAND_FAILED');
    assert.match(r.outcome.message, /^ctr could not import \/root\/broken\/bad\.tar into containerd at .*: `ctr -n k8s\.io images import \/root\/broken\/bad\.tar` failed \(exit 1\): .*; rolled back: /);
    assert.deepEqual(await ls(), before);
    assert.equal(await digestOf(oci[0]!.ref), oci[0]!.manifestDigest);
  });

  it('imports again when a tag now names different content (digest, not name, decides)', async () => {
    const [v2] = writeOciArchive(join(tmp, 'cloudcore-v2.tar'), spec('docker.io/kubeedge/cloudcore:v1.19.0', 'cloudcore rebuilt\n'));
    await h.copyIn(join(tmp, 'cloudcore-v2.tar'), '/root/extra/cloudcore-v2.tar');
    const r = await runStep(h, 'image.import', { files: ['/root/extra/*.tar'] });
    console.log(summary('same tag, new content', r));
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    assert.equal(await digestOf(v2!.ref), v2!.manifestDigest);
    assert.equal((await runStep(h, 'image.import', { files: ['/root/extra/*.tar'] })).outcome.status, 'unchanged');
  });

  it('fails clearly for a pattern that matches nothing and for an unreachable containerd', async () => {
    const none = await runStep(h, 'image.import', args({ images: ['images/*.tar', 'images/edgemesh-*.tar'] }), { bundles });
    assert.equal(none.outcome.errorCode, 'STEP_INPUT_MISSING');
    assert.match(none.outcome.message, /^image tar "images\/edgemesh-\*\.tar" matched no file in bundle "kubeedge"/);
    const down = await runStep(h, 'image.import', args({ address: '/run/k3s/containerd/containerd.sock' }), { bundles });
    assert.equal(down.outcome.errorCode, 'STEP_SERVICE_UNREACHABLE');
    assert.match(down.outcome.message, /^containerd is not running on this host: socket \/run\/k3s\/containerd\/containerd\.sock does not exist\. Next: start containerd/);
  });
});
