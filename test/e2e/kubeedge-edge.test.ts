/**
 * The kubeedge-edge reference plan (examples/kubeedge-edge) end to end on
 * simulated hosts with real systemd and containerd: the operator pushes the
 * offline package and the plan, prefetches, runs; each host imports the
 * images, installs edgecore, enables edgeStream and restarts it; the seed's
 * own verification commands pass; a second run changes nothing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, FABRIC_IP, ensurePrereqs, writeDockerArchive, writeOciArchive, type FabricProcess } from './harness/index.js';
import { repoRoot, run } from '../support/proc.js';
import { waitFor } from '../support/fixtures.js';

const PORT = 7443;

describe('e2e: kubeedge-edge reference plan on simulated hosts', function () {
  this.timeout(600_000);
  const root = repoRoot();
  const binary = join(root, 'dist', 'ferry-agent');
  const ferryBin = join(root, 'bin', 'ferry.js');
  const tmp = mkdtempSync(join(tmpdir(), 'ferry-kedge-'));
  let cluster: Cluster | undefined;
  let controller: FabricProcess | undefined;
  let data = '';
  const ferry = async (...args: string[]) => {
    const r = await run([process.execPath, ferryBin, '--data', data, ...args], { timeoutMs: 300_000 });
    return r;
  };
  const ok = async (...args: string[]) => {
    const r = await ferry(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  before(async function () {
    const pre = await ensurePrereqs({ log: (m) => console.log(`      prereqs: ${m}`) });
    if (!pre.ok) {
      console.log(`      SKIP kubeedge-edge e2e: ${pre.skipReason}`);
      this.skip();
    }
    const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-agent.mjs'), '--if-stale'], { cwd: root, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stderr);
    cluster = await Cluster.create({ hosts: 2, name: 'kedge' });
    await Promise.all(cluster.hosts.map((h) => h.enableContainerd()));
    data = join(cluster.dir, 'controller');
    controller = cluster.runInFabric([process.execPath, ferryBin, 'controller', 'start', '--data', data, '--listen', `${FABRIC_IP}:${PORT}`, '--heartbeat', '2s']);
    await controller.waitForOutput(/CA pin:/, 30_000);
    // The signing key is trusted before hosts enroll: they pin the keys they are given.
    await ok('key', 'gen', '--out', join(tmp, 'op'));
    await ok('key', 'add', join(tmp, 'op.pub'), '--name', 'ops');
    const js = (await ok('token', 'create', '--ttl', '10m', '--uses', '2', '--label', 'role=edge')).stdout.trim();
    for (const h of cluster.hosts) {
      await h.copyIn(binary, '/usr/local/bin/ferry-agent', 0o755);
      assert.equal((await h.exec(['/usr/local/bin/ferry-agent', 'join', js])).exitCode, 0);
      assert.equal((await h.exec(['/usr/local/bin/ferry-agent', 'install-service'])).exitCode, 0);
    }
    await waitFor(async () => {
      const ls = JSON.parse((await ferry('agents', 'ls', '--json')).stdout || '[]') as Array<{ connected: boolean }>;
      return ls.filter((a) => a.connected).length === 2;
    }, 30_000, 'agents connected');
  });

  after(async () => {
    await cluster?.destroy({ graceful: false });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('pushes the offline package (lint passes) and the signed plan', async () => {
    const pkg = join(tmp, 'package');
    cpSync(join(root, 'examples', 'kubeedge-edge', 'package'), pkg, { recursive: true });
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
    const ls = JSON.parse((await ok('agents', 'ls', '--json')).stdout) as Array<{ bundles: string[] }>;
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
