import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, FABRIC_IP, ensurePrereqs } from '../harness/index.js';
import { repoRoot, run, type Result } from '../../support/proc.js';
import { waitFor } from '../../support/fixtures.js';

export const CONTROLLER_PORT = 7443;

/** A controller in the fabric and enrolled agents (the single binary, as systemd units) on simulated hosts. */
export interface Fleet {
  cluster: Cluster;
  tmp: string;
  root: string;
  /** Signing key pair trusted by the controller before the hosts enrolled. */
  key: string;
  ferry(...args: string[]): Promise<Result>;
  /** Like ferry(), asserting exit 0. */
  ok(...args: string[]): Promise<Result>;
  destroy(): Promise<void>;
}

/**
 * Builds a fleet the way an operator would: controller start, key gen + add,
 * token create, and on each host `ferry-agent join` + `install-service`.
 * Returns undefined (after logging why) when simulated hosts are unavailable.
 */
export async function startFleet(opts: {
  hosts: number; name: string; labels: string[]; containerd?: boolean;
  /** Extra `ferry controller start` flags, e.g. `--registry-addr 10.77.0.1:5000 --san sea.hub`. */
  controllerArgs?: string[];
}): Promise<Fleet | undefined> {
  const pre = await ensurePrereqs({ log: (m) => console.log(`      prereqs: ${m}`) });
  if (!pre.ok) {
    console.log(`      SKIP ${opts.name}: ${pre.skipReason}`);
    return undefined;
  }
  const root = repoRoot();
  const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-agent.mjs'), '--if-stale'], { cwd: root, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  const tmp = mkdtempSync(join(tmpdir(), `ferry-${opts.name}-`));
  const cluster = await Cluster.create({ hosts: opts.hosts, name: opts.name });
  const data = join(cluster.dir, 'controller');
  const ferryBin = join(root, 'bin', 'ferry.js');
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--data', data, ...args], { timeoutMs: 300_000 });
  const ok = async (...args: string[]) => {
    const r = await ferry(...args);
    assert.equal(r.code, 0, `ferry ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const fleet: Fleet = {
    cluster, tmp, root, key: join(tmp, 'op.key'), ferry, ok,
    destroy: async () => {
      await cluster.destroy({ graceful: false });
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  try {
    if (opts.containerd) await Promise.all(cluster.hosts.map((h) => h.enableContainerd()));
    const controller = cluster.runInFabric([process.execPath, ferryBin, 'controller', 'start', '--data', data,
      '--listen', `${FABRIC_IP}:${CONTROLLER_PORT}`, '--heartbeat', '2s', ...(opts.controllerArgs ?? [])]);
    await controller.waitForOutput(/CA pin:/, 30_000);
    await ok('key', 'gen', '--out', join(tmp, 'op'));
    await ok('key', 'add', join(tmp, 'op.pub'), '--name', 'ops');
    const js = JSON.parse((await ok('token', 'create', '--ttl', '10m', '--uses', String(opts.hosts), ...opts.labels.flatMap((l) => ['--label', l]), '--json')).stdout).joinString as string;
    const binary = join(root, 'dist', 'ferry-agent');
    for (const h of cluster.hosts) {
      await h.copyIn(binary, '/usr/local/bin/ferry-agent', 0o755);
      const j = await h.exec(['/usr/local/bin/ferry-agent', 'join', js]);
      assert.equal(j.exitCode, 0, j.stderr);
      const s = await h.exec(['/usr/local/bin/ferry-agent', 'install-service']);
      assert.equal(s.exitCode, 0, s.stderr);
    }
    await waitFor(async () => {
      const ls = (await ferry('agents', 'ls', '--json')).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { connected: boolean });
      return ls.filter((a) => a.connected).length === opts.hosts;
    }, 30_000, 'agents connected');
    return fleet;
  } catch (err) {
    await fleet.destroy();
    throw err;
  }
}
