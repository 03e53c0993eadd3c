/**
 * Seed 003 end to end against Ferry's own registry: the examples/sealer-lvscare plan and
 * bundle, unchanged, on a simulated host with real containerd. The controller serves its
 * registry on the fabric address (`--registry-addr 10.77.0.1:5000 --san sea.hub`), the bundle
 * holds a real (uncompressed OCI) image tar and is published through its own rewrite rule as
 * sea.hub:5000/sealerio/lvscare, and `ferry run` pins sea.hub, writes hosts.toml naming the
 * agent's fleet certificate and pulls with the plan's own `ctr images pull --hosts-dir` step.
 * Nothing else listens on the fabric address, so the pull resolves only through Ferry.
 * The same host then downloads a bundle file from the files repository with curl and the
 * fleet certificate, and runs the examples/kubespray-offline node steps (bundle published
 * --anonymous): the fleet CA in the system trust store, a file fetched without a client
 * certificate, and registry.k8s.io/pause pulled as hub.kubespray.local:5000/registry.k8s.io/…
 * (no `ns` is sent when mirror and registry host are the same: the path names the upstream).
 * The pull counters (ferry_registry_* on /metrics) are checked by the integration tests, not here.
 * Skips when simulated hosts are unavailable (not root).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FABRIC_IP, hostIp, writeOciArchive, type Host } from './harness/index.js';
import { startFleet, type Fleet } from './support/fleet.js';

const REGISTRY_PORT = 5000;
const SOURCE = 'docker.io/sealerio/lvscare:v1.1.3-beta.8';
const LVSCARE = 'sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8';
const BUNDLE = 'sealer-lvscare:1.1.3-beta.8';
const AGENT = '/var/lib/ferry-agent';

interface Publication { name: string; version: string; anonymous: boolean; tags: Array<{ repository: string; tag: string; digest: string }>; skipped: string[] }

describe('e2e: sealer-lvscare and kubespray-offline seed plans pulling from Ferry\'s registry on a simulated host', function () {
  this.timeout(600_000);
  let fleet: Fleet;
  let host: Host;
  let pkg: string;
  let published: Publication;
  const runArgs = ['run', 'sealer-lvscare', '--all', '--param', `registry_address=${FABRIC_IP}`, '--param', `master0=${hostIp(1)}`];

  before(async function () {
    const f = await startFleet({
      hosts: 1, name: 'seedreg', labels: ['role=master', 'kubespray=node'], containerd: true,
      controllerArgs: ['--registry-addr', `${FABRIC_IP}:${REGISTRY_PORT}`, '--san', 'sea.hub', '--san', 'hub.kubespray.local'],
    });
    if (!f) this.skip();
    fleet = f!;
    host = fleet.cluster.hosts[0]!;
    pkg = join(fleet.tmp, 'package');
    cpSync(join(fleet.root, 'examples', 'sealer-lvscare', 'package'), pkg, { recursive: true });
    mkdirSync(join(pkg, 'images'), { recursive: true });
    // As `skopeo copy docker://sealerio/lvscare:... oci-archive:images/lvscare.tar` writes it: uncompressed.
    writeOciArchive(join(pkg, 'images', 'lvscare.tar'), {
      ref: SOURCE, layers: [[{ path: 'usr/bin/lvscare', content: '#!/bin/sh\necho lvscare\n', mode: 0o755 }]], config: { Cmd: ['/usr/bin/lvscare'] },
    });
    await fleet.ok('bundle', 'push', pkg, '--key', fleet.key);
    await fleet.ok('plan', 'push', join(fleet.root, 'examples', 'sealer-lvscare', 'plan.yaml'), '--key', fleet.key);
  });

  after(async () => fleet?.destroy());

  it('publishes the bundle under sea.hub:5000 through its own rewrite rule', async () => {
    published = JSON.parse((await fleet.ok('registry', 'publish', BUNDLE, '--json')).stdout.trim()) as Publication;
    assert.deepEqual(published.skipped, []);
    assert.equal(published.anonymous, false);
    assert.deepEqual(published.tags.map((t) => `${t.repository}:${t.tag}`), [LVSCARE]);
    assert.match(published.tags[0]!.digest, /^sha256:[0-9a-f]{64}$/);
    const ls = (await fleet.ok('registry', 'ls', '--json')).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Publication);
    assert.deepEqual(ls.map((p) => p.tags), [published.tags]);
  });

  it('ferry run pins sea.hub, writes hosts.toml with the fleet certificate, and containerd pulls the image from Ferry', async () => {
    assert.equal((await host.exec(['getent', 'hosts', 'sea.hub'])).exitCode, 2, 'sea.hub unknown before the run');
    const t0 = Date.now();
    const r = await fleet.ok(...runArgs);
    console.log(`      ferry run sealer-lvscare in ${Date.now() - t0} ms`);
    for (const step of ['pin-sea-hub', 'containerd-mirror', 'pull-lvscare', 'kube-lvscare']) assert.match(r.stdout, new RegExp(`\\] ${step}: changed`), r.stdout);
    assert.match(r.stdout, /\] verify-image: unchanged/, r.stdout);
    assert.match(await host.execOk(['getent', 'hosts', 'sea.hub']), new RegExp(`^${FABRIC_IP.replace(/\./g, '\\.')}\\s+sea\\.hub`));
    const toml = await host.readFile('/etc/containerd/certs.d/sea.hub:5000/hosts.toml');
    assert.match(toml, new RegExp(`\\[host\\."https://sea\\.hub:${REGISTRY_PORT}"\\]`));
    assert.match(toml, new RegExp(`client = \\[\\s*\\[\\s*"${AGENT}/agent\\.crt",\\s*"${AGENT}/agent\\.key"\\s*\\]\\s*\\]`));
    assert.doesNotMatch(toml, /^server\s*=/m, 'strictly offline: no fallback to the upstream');
    const row = (await host.execOk(['ctr', '-n', 'k8s.io', 'images', 'ls'])).split('\n').map((l) => l.split(/\s+/)).find((c) => c[0] === LVSCARE);
    assert.ok(row, 'image present in containerd');
    assert.equal(row[2], published.tags[0]!.digest, 'containerd holds the manifest digest Ferry published');
    const pod = await host.readFile('/etc/kubernetes/manifests/kube-lvscare.yaml');
    assert.match(pod, /image: sea\.hub:5000\/sealerio\/lvscare:v1\.1\.3-beta\.8/);
    assert.match(pod, new RegExp(`"${hostIp(1).replace(/\./g, '\\.')}:6443"`));
  });

  it('containerd holds every blob of the pulled image (ctr images check: complete)', async () => {
    const check = await host.exec(['ctr', '-n', 'k8s.io', 'images', 'check', `name==${LVSCARE}`]);
    assert.equal(check.exitCode, 0, check.stderr);
    assert.match(check.stdout, /complete \((\d+)\/\1\)/, check.stdout);
  });

  it('a second run changes nothing', async () => {
    const r = await fleet.ok(...runArgs);
    assert.deepEqual(r.stdout.split('\n').filter((l) => /: changed/.test(l)), [], r.stdout);
  });

  it('the host downloads a bundle file from the files repository with its fleet certificate; without it, 401', async () => {
    const url = `https://sea.hub:${REGISTRY_PORT}/files/sealer-lvscare/1.1.3-beta.8/manifests/kube-lvscare.yaml`;
    const tls = ['--cacert', `${AGENT}/ca.crt`];
    const got = await host.exec(['curl', '-sS', '--fail', ...tls, '--cert', `${AGENT}/agent.crt`, '--key', `${AGENT}/agent.key`, '-o', '/tmp/kube-lvscare.yaml', url]);
    assert.equal(got.exitCode, 0, got.stderr);
    const want = createHash('sha256').update(readFileSync(join(pkg, 'manifests', 'kube-lvscare.yaml'))).digest('hex');
    assert.equal((await host.execOk(['sha256sum', '/tmp/kube-lvscare.yaml'])).split(/\s+/)[0], want);
    const anon = await host.exec(['curl', '-sS', ...tls, '-o', '/dev/null', '-w', '%{http_code}', url]);
    assert.equal(anon.stdout.trim(), '401', anon.stderr);
  });

  it('kubespray-offline on a node: the fleet CA trusted system-wide, an anonymous file download, and containerd pulling registry.k8s.io/pause through hub.kubespray.local', async () => {
    const kpkg = join(fleet.tmp, 'kubespray-package');
    cpSync(join(fleet.root, 'examples', 'kubespray-offline', 'package'), kpkg, { recursive: true });
    mkdirSync(join(kpkg, 'images'), { recursive: true });
    writeOciArchive(join(kpkg, 'images', 'pause.tar'), { ref: 'registry.k8s.io/pause:3.9', layers: [[{ path: 'pause', content: 'pause\n', mode: 0o755 }]], config: { Cmd: ['/pause'] } });
    const rel = 'k8s/dl.k8s.io/release/v1.30.4/bin/linux/amd64/kubeadm';
    mkdirSync(join(kpkg, rel, '..'), { recursive: true });
    writeFileSync(join(kpkg, rel), 'kubeadm stand-in\n'.repeat(1000));
    await fleet.ok('bundle', 'push', kpkg, '--key', fleet.key);
    await fleet.ok('plan', 'push', join(fleet.root, 'examples', 'kubespray-offline', 'plan.yaml'), '--key', fleet.key);
    const pub = JSON.parse((await fleet.ok('registry', 'publish', 'kubespray-offline:2.25.0', '--anonymous', '--json')).stdout.trim()) as Publication;
    assert.deepEqual(pub.tags.map((t) => `${t.repository}:${t.tag}`), ['registry.k8s.io/pause:3.9']);
    const r = await fleet.ok('run', 'kubespray-offline', '--all', '--param', `registry_address=${FABRIC_IP}`);
    for (const step of ['pin-registry-name', 'trust-fleet-ca', 'containerd-mirror']) assert.match(r.stdout, new RegExp(`\\] ${step}: changed`), r.stdout);
    // Kubespray's get_url sends no client certificate and trusts the system store.
    const got = await host.exec(['curl', '-sS', '--fail', '--cacert', '/etc/ssl/certs/ca-certificates.crt', '-o', '/tmp/kubeadm',
      `https://hub.kubespray.local:${REGISTRY_PORT}/files/kubespray-offline/2.25.0/${rel}`]);
    assert.equal(got.exitCode, 0, got.stderr);
    const want = createHash('sha256').update(readFileSync(join(kpkg, rel))).digest('hex');
    assert.equal((await host.execOk(['sha256sum', '/tmp/kubeadm'])).split(/\s+/)[0], want);
    const ref = `hub.kubespray.local:${REGISTRY_PORT}/registry.k8s.io/pause:3.9`;
    const pull = await host.exec(['ctr', '-n', 'k8s.io', 'images', 'pull', '--hosts-dir', '/etc/containerd/certs.d', ref], { timeoutMs: 60_000 });
    assert.equal(pull.exitCode, 0, pull.stderr);
    const row = (await host.execOk(['ctr', '-n', 'k8s.io', 'images', 'ls'])).split('\n').map((l) => l.split(/\s+/)).find((c) => c[0] === ref);
    assert.equal(row?.[2], pub.tags[0]!.digest);
  });
});
