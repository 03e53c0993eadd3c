/**
 * A staged rollout of the kubeedge-edge reference plan on 6 simulated hosts
 * (real systemd and containerd, the agent binary as a systemd unit): a
 * canary and two waves, prefetch first; one host's cable is cut in the
 * middle of its step in wave 2 and plugged back later; the controller is
 * SIGKILLed while wave 3 runs and started again on the same store. Final
 * states are all succeeded, no host ran the plan twice, no output was lost.
 *
 * The plan is the reference plan with one extra first step that records each
 * run on the host and takes a few seconds, so the test can act mid-step.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FABRIC_IP, writeDockerArchive, writeOciArchive, type FabricProcess } from './harness/index.js';
import { CONTROLLER_PORT, startFleet, type Fleet } from './support/fleet.js';
import { waitFor } from '../support/fixtures.js';

interface Snap {
  rollout: { state: string; paused: boolean; pauseReason: string | null; currentWave: number | null };
  hosts: Array<{ hostname: string; wave: number; state: string; stepId: string | null; connected: boolean; message: string | null }>;
}

const MARK = `  - id: mark-run
    type: exec
    args: { argv: [sh, -c, "echo run >> /var/lib/rollout-e2e-runs; sleep 8"] }
`;

describe('e2e: staged rollout of kubeedge-edge on 6 simulated hosts', function () {
  this.timeout(900_000);
  let fleet: Fleet;
  let id = '';
  let controller: FabricProcess | undefined;
  const ok = (...args: string[]) => fleet.ok(...args);
  async function until(cond: (s: Snap) => boolean, what: string, ms = 180_000): Promise<Snap> {
    let s: Snap | undefined;
    await waitFor(async () => {
      const r = await fleet.ferry('rollout', 'show', id, '--json');
      if (r.code !== 0) return false; // the controller is restarting
      return cond((s = JSON.parse(r.stdout) as Snap));
    }, ms, what);
    return s!;
  }

  before(async function () {
    const f = await startFleet({ hosts: 6, name: 'rollout', labels: ['role=edge'], containerd: true });
    if (!f) this.skip();
    fleet = f!;
  });
  after(async () => { await controller?.stop(2000); await fleet?.destroy(); });

  it('pushes the offline package and the plan', async () => {
    const pkg = join(fleet.tmp, 'package');
    cpSync(join(fleet.root, 'examples', 'kubeedge-edge', 'package'), pkg, { recursive: true });
    mkdirSync(join(pkg, 'images'), { recursive: true }); // the image tars are built here, not kept in git
    writeOciArchive(join(pkg, 'images', 'docker.io-kubeedge-edgemesh-agent-v1.17.0.tar'), {
      ref: 'docker.io/kubeedge/edgemesh-agent:v1.17.0',
      layers: [[{ path: 'usr/local/bin/edgemesh-agent', content: '#!/bin/sh\necho edgemesh-agent stand-in\n', mode: 0o755 }]],
    });
    writeDockerArchive(join(pkg, 'images', 'eclipse-mosquitto-2.0.tar'), {
      ref: 'docker.io/library/eclipse-mosquitto:2.0',
      layers: [[{ path: 'usr/sbin/mosquitto', content: '#!/bin/sh\necho mosquitto stand-in\n', mode: 0o755 }]],
    });
    await ok('bundle', 'push', pkg, '--key', fleet.key);
    const plan = readFileSync(join(fleet.root, 'examples', 'kubeedge-edge', 'plan.yaml'), 'utf8').replace(/^steps:\n/m, `steps:\n${MARK}`);
    const file = join(fleet.tmp, 'plan.yaml');
    writeFileSync(file, plan);
    await ok('plan', 'push', file, '--key', fleet.key);
  });

  it('creates the rollout: canary h1, then waves of 2 and 3, bundles prefetched first', async () => {
    const spec = join(fleet.tmp, 'rollout.yaml');
    writeFileSync(spec, `name: edge-e2e
plan: kubeedge-edge
params: { cloudcore_ip: ${FABRIC_IP} }
targets: { selector: role=edge, hosts: [h1] }
strategy:
  waves: [1, "50%", "100%"]
  errorBudget: 0
  onFailure: pause
  offlineTimeout: 10m
  prefetch: true
`);
    const r = await ok('rollout', 'create', '-f', spec, '--json');
    id = (JSON.parse(r.stdout) as { id: string }).id;
    const s = await until((x) => x.rollout.currentWave !== null, 'wave 1 to begin');
    assert.deepEqual(s.hosts.map((h) => [h.hostname, h.wave]), [['h1', 0], ['h2', 1], ['h3', 1], ['h4', 2], ['h5', 2], ['h6', 2]]);
  });

  it('keeps a host whose cable is cut mid-step running (not failed), and takes its result when it is back', async () => {
    const s = await until((x) => x.hosts.some((h) => h.wave === 1 && h.state === 'running' && h.stepId === 'mark-run'), 'wave 2 mid-step', 300_000);
    const victim = s.hosts.find((h) => h.wave === 1 && h.state === 'running')!.hostname;
    const host = fleet.cluster.hosts.find((h) => h.name === victim)!;
    await host.cutCable({ reset: true });
    const cut = await until((x) => !x.hosts.find((h) => h.hostname === victim)!.connected, `${victim} seen offline`, 60_000);
    assert.equal(cut.hosts.find((h) => h.hostname === victim)!.state, 'running');
    const other = await until((x) => x.hosts.filter((h) => h.wave === 1).some((h) => h.hostname !== victim && h.state === 'succeeded'), 'the other wave-2 host to finish');
    assert.equal(other.hosts.find((h) => h.hostname === victim)!.state, 'running', 'still running, its result not yet known');
    assert.ok(other.hosts.filter((h) => h.wave === 2).every((h) => h.state === 'ready'), 'wave 3 (prefetched: ready) waits for the cut host');
    await new Promise((r) => setTimeout(r, 10_000)); // the host finishes its job offline meanwhile
    await host.restoreCable();
    const back = await until((x) => x.hosts.find((h) => h.hostname === victim)!.state !== 'running', `${victim}'s result`);
    assert.equal(back.hosts.find((h) => h.hostname === victim)!.state, 'succeeded');
  });

  it('survives the controller being killed mid-rollout and finishes: all succeeded, nobody ran twice, no output lost', async () => {
    await until((x) => x.hosts.some((h) => h.wave === 2 && h.state === 'running' && h.stepId === 'mark-run'), 'wave 3 mid-step');
    const pid = fleet.cluster.state.fabricPids[0]!.pid; // the controller startFleet started
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 3000));
    const data = join(fleet.cluster.dir, 'controller');
    controller = fleet.cluster.runInFabric([process.execPath, join(fleet.root, 'bin', 'ferry.js'), 'controller', 'start', '--data', data,
      '--listen', `${FABRIC_IP}:${CONTROLLER_PORT}`, '--heartbeat', '2s']);
    await controller.waitForOutput(/CA pin:/, 30_000);
    const w = await fleet.ferry('rollout', 'watch', id, '--json');
    const result = JSON.parse(w.stdout.trim().split('\n').at(-1)!) as { state: string; counts: Record<string, number> };
    assert.equal(w.code, 0, w.stdout + w.stderr);
    assert.deepEqual(result.counts, { succeeded: 6 });
    for (const h of fleet.cluster.hosts) {
      assert.equal((await h.readFile('/var/lib/rollout-e2e-runs')).trim(), 'run', `${h.name} ran the plan once`);
      assert.equal((await h.exec(['systemctl', 'is-active', 'edgecore'])).stdout.trim(), 'active');
      assert.match(await h.execOk(['grep', '-A', '8', 'edgeStream:', '/etc/kubeedge/config/edgecore.yaml']), /enable: true/);
      const logs = (await ok('rollout', 'logs', id, '--host', h.name)).stdout.split('\n');
      const finished = logs.filter((l) => /^\[\d\/8\] \S+: (changed|unchanged|skipped)/.test(l));
      assert.equal(finished.length, 8, `${h.name}: every step reported once\n${logs.join('\n')}`);
      assert.ok(logs.some((l) => l.startsWith('result: succeeded')), h.name);
    }
    const events = w.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; kind?: string; hostname?: string; state?: string });
    const starts = events.filter((e) => e.kind === 'host' && e.state === 'running').map((e) => e.hostname).sort();
    assert.deepEqual(starts, ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'], 'each host was started once');
  });
});
