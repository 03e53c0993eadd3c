/**
 * The kubeedge-edge reference plan (examples/kubeedge-edge) end to end on
 * simulated hosts with real systemd and containerd: the operator pushes the
 * offline package and the plan, prefetches, runs; each host imports the
 * images, installs edgecore, enables edgeStream and restarts it; the seed's
 * own verification commands pass; a second run changes nothing.
 */
import assert from 'node:assert/strict';
import { jsonLines } from '../support/json-lines.js';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FABRIC_IP, writeDockerArchive, writeOciArchive, type Cluster } from './harness/index.js';
import { startFleet, type Fleet } from './support/fleet.js';

describe('e2e: kubeedge-edge reference plan on simulated hosts', function () {
  this.timeout(600_000);
  let fleet: Fleet;
  let cluster: Cluster | undefined;
  let tmp = '';
  let root = '';
  const ok = (...args: string[]) => fleet.ok(...args);

  before(async function () {
    const f = await startFleet({ hosts: 2, name: 'kedge', labels: ['role=edge'], containerd: true });
    if (!f) this.skip();
    fleet = f!;
    ({ cluster, tmp, root } = fleet);
  });

  after(async () => fleet?.destroy());

  it('pushes the offline package (lint passes) and the signed plan', async () => {
    const pkg = join(tmp, 'package');
    cpSync(join(root, 'examples', 'kubeedge-edge', 'package'), pkg, { recursive: true });
    mkdirSync(join(pkg, 'images'), { recursive: true }); // git keeps no empty directories
    writeOciArchive(join(pkg, 'images', 'docker.io-kubeedge-edgemesh-agent-v1.17.0.tar'), {
      ref: 'docker.io/kubeedge/edgemesh-agent:v1.17.0',
      layers: [[{ path: 'usr/local/bin/edgemesh-agent', content: '#!/bin/sh\necho edgemesh-agent stand-in\n', mode: 0o755 }]],
    });
    writeDockerArchive(join(pkg, 'images', 'eclipse-mosquitto-2.0.tar'), {
      ref: 'docker.io/library/eclipse-mosquitto:2.0',
      layers: [[{ path: 'usr/sbin/mosquitto', content: '#!/bin/sh\necho mosquitto stand-in\n', mode: 0o755 }]],
    });
    const push = await ok('bundle', 'push', pkg, '--key', join(tmp, 'op.key'));
    assert.match(push.stdout, /pushed kubeedge-edge:1\.22\.0 .* 2 images/);
    await ok('plan', 'push', join(root, 'examples', 'kubeedge-edge', 'plan.yaml'), '--key', join(tmp, 'op.key'));
  });

  it('prefetches the bundle onto every edge host', async () => {
    const r = await ok('bundle', 'prefetch', 'kubeedge-edge:1.22.0', '--selector', 'role=edge');
    assert.equal((r.stdout.match(/\bready\b/g) ?? []).length, 2, r.stdout);
    const ls = jsonLines<{ bundles: string[] }>((await ok('agents', 'ls', '--json')).stdout);
    assert.ok(ls.every((a) => a.bundles.includes('kubeedge-edge:1.22.0')));
  });

  it('runs the plan: images imported, edgecore running with edgeStream on, the seed\'s checks pass', async () => {
    const r = await ok('run', 'kubeedge-edge', '--selector', 'role=edge', '--param', `cloudcore_ip=${FABRIC_IP}`);
    for (const h of cluster!.hosts) {
      assert.match(r.stdout, new RegExp(`${h.name} \\[7/7\\] verify-edge-stream: `));
      const imgs = await h.exec(['sh', '-c', 'ctr -n k8s.io images ls | grep edgemesh']);
      assert.equal(imgs.exitCode, 0, imgs.stderr);
      const cfg = await h.execOk(['grep', '-A', '8', 'edgeStream:', '/etc/kubeedge/config/edgecore.yaml']);
      assert.match(cfg, /enable: true/);
      assert.match(cfg, new RegExp(`server: ${FABRIC_IP.replace(/\./g, '\\.')}:10004`));
      assert.match(await h.readFile('/etc/kubeedge/config/edgecore.yaml'), /# kubectl logs\/exec and metrics go through this tunnel/);
      assert.equal((await h.exec(['systemctl', 'is-active', 'edgecore'])).stdout.trim(), 'active');
      assert.match(await h.execOk(['journalctl', '-u', 'edgecore', '-o', 'cat', '--no-pager']), /started with edgeStream enabled/);
    }
  });

  it('changes nothing when run again', async () => {
    const r = await ok('run', 'kubeedge-edge', '--selector', 'role=edge', '--param', `cloudcore_ip=${FABRIC_IP}`);
    const steps = r.stdout.split('\n').filter((l) => /\[\d\/7\]/.test(l));
    assert.equal(steps.length, 14, r.stdout);
    const changed = steps.filter((l) => /: changed/.test(l));
    assert.deepEqual(changed, [], r.stdout);
  });

  it('check mode shows the edit it would make and makes none', async () => {
    const r = await ok('run', 'kubeedge-edge', '--selector', 'role=edge', '--check', '--param', 'cloudcore_ip=10.77.0.99');
    assert.match(r.stdout, /enable-edge-stream: changed/);
    assert.match(r.stdout, /\+\s+server: 10\.77\.0\.99:10004/);
    for (const h of cluster!.hosts) {
      assert.match(await h.readFile('/etc/kubeedge/config/edgecore.yaml'), new RegExp(`server: ${FABRIC_IP.replace(/\./g, '\\.')}:10004`));
    }
  });
});
