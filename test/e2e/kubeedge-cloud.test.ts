/**
 * The kubeedge-cloud reference plan (examples/kubeedge-cloud) on a simulated
 * host with real systemd, containerd and iptables: k3s and KubeEdge images
 * imported before keadm init, dynamicController enabled with a backup,
 * CloudCore restarted, the stream DNAT rule added exactly once. The kubectl
 * steps wait for k3s's kubeconfig, which a simulated host has no API server
 * for, so they report skipped — stated, not faked.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FABRIC_IP, writeOciArchive, type Host } from './harness/index.js';
import { startFleet, type Fleet } from './support/fleet.js';

const IMAGES: Array<[string, string]> = [
  ['k3s/pause.tar', 'docker.io/rancher/mirrored-pause:3.6'],
  ['k3s/coredns.tar', 'docker.io/rancher/mirrored-coredns-coredns:1.12.3'],
  ['kubeedge/cloudcore.tar', 'docker.io/kubeedge/cloudcore:v1.22.0'],
  ['kubeedge/iptables-manager.tar', 'docker.io/kubeedge/iptables-manager:v1.22.0'],
  ['kubeedge/controller-manager.tar', 'docker.io/kubeedge/controller-manager:v1.22.0'],
  ['kubeedge/admission.tar', 'docker.io/kubeedge/admission:v1.22.0'],
  ['kubeedge/edgemesh-agent.tar', 'docker.io/kubeedge/edgemesh-agent:v1.17.0'],
  ['kubeedge/metrics-server.tar', 'docker.io/rancher/mirrored-metrics-server:v0.8.0'],
];

describe('e2e: kubeedge-cloud reference plan on a simulated host', function () {
  this.timeout(600_000);
  let fleet: Fleet;
  let host: Host;

  before(async function () {
    const f = await startFleet({ hosts: 1, name: 'kcloud', labels: ['role=cloud'], containerd: true });
    if (!f) this.skip();
    fleet = f!;
    host = fleet.cluster.hosts[0]!;
    const pkg = join(fleet.tmp, 'package');
    cpSync(join(fleet.root, 'examples', 'kubeedge-cloud', 'package'), pkg, { recursive: true });
    for (const [file, ref] of IMAGES) {
      mkdirSync(dirname(join(pkg, 'images', file)), { recursive: true }); // git keeps no empty directories
      writeOciArchive(join(pkg, 'images', file), { ref, layers: [[{ path: `opt/${file.replace(/[/.]/g, '-')}`, content: `${ref}\n` }]] });
    }
    await fleet.ok('bundle', 'push', pkg, '--key', fleet.key);
    await fleet.ok('plan', 'push', join(fleet.root, 'examples', 'kubeedge-cloud', 'plan.yaml'), '--key', fleet.key);
  });

  after(async () => fleet?.destroy());

  const dnatRules = async () => (await host.execOk(['iptables', '-t', 'nat', '-S', 'OUTPUT'])).split('\n').filter((l) => l.includes('--dport 10350'));

  it('imports every image before keadm init and brings CloudCore up with dynamicController', async () => {
    const r = await fleet.ok('run', 'kubeedge-cloud', '--selector', 'role=cloud', '--param', `cloudcore_ip=${FABRIC_IP}`);
    const order = r.stdout.split('\n').map((l) => /\] ([a-z-]+): /.exec(l)?.[1]).filter(Boolean);
    assert.ok(order.indexOf('import-kubeedge-images') < order.indexOf('keadm-init'), r.stdout);
    const imgs = await host.execOk(['ctr', '-n', 'k8s.io', 'images', 'ls', '-q']);
    for (const [, ref] of IMAGES) assert.ok(imgs.includes(ref), `${ref} missing:\n${imgs}`);
    const cfg = await host.readFile('/etc/kubeedge/config/cloudcore.yaml');
    assert.match(cfg, /dynamicController:\n    enable: true/);
    assert.match(cfg, /# EdgeMesh needs this on \(seed 001\)/);
    const backups = await host.execOk(['sh', '-c', 'ls /etc/kubeedge/config/ | grep -c ferry-bak || true']);
    assert.equal(backups.trim(), '1');
    assert.equal((await host.exec(['systemctl', 'is-active', 'cloudcore'])).stdout.trim(), 'active');
    assert.match(await host.execOk(['journalctl', '-u', 'cloudcore', '-o', 'cat', '--no-pager']), /started with dynamicController enabled/);
    assert.match(r.stdout, /istio-crds: skipped/);
    const rules = await dnatRules();
    assert.equal(rules.length, 1, rules.join('\n'));
    assert.match(rules[0]!, new RegExp(`--to-destination ${FABRIC_IP.replace(/\./g, '\\.')}:10003`));
  });

  it('changes nothing the second time: one DNAT rule, no new backup, no restart', async () => {
    const pid = (await host.execOk(['systemctl', 'show', '-p', 'MainPID', '--value', 'cloudcore'])).trim();
    const r = await fleet.ok('run', 'kubeedge-cloud', '--selector', 'role=cloud', '--param', `cloudcore_ip=${FABRIC_IP}`);
    assert.deepEqual(r.stdout.split('\n').filter((l) => /: changed/.test(l)), [], r.stdout);
    assert.equal((await dnatRules()).length, 1);
    assert.equal((await host.execOk(['systemctl', 'show', '-p', 'MainPID', '--value', 'cloudcore'])).trim(), pid);
  });
});
