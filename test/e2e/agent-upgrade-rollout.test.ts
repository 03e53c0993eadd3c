/**
 * `ferry agents upgrade` end to end: a real controller, two simulated hosts
 * with real systemd running the real single binary as their service, and
 * agent releases added with `ferry agents release add`. The controller
 * sends each host AgentUpgrade over its session; the host stages its
 * architecture's release through the chunk path, verifies it, switches,
 * restarts through systemd and commits or rolls back; the rollout counts
 * the outcome.
 *
 *   both hosts run 0.0.9 (built with --agent-version);
 *   0.0.10, built with --test-fail-start (answers `version`, exits at start):
 *     wave 1's host is rolled back, counted failed with the new version's
 *     last log lines, and the rollout pauses on its error budget;
 *   0.1.0 (the current build): both hosts commit, the rollout succeeds, and
 *     only a fraction of the binary moved (the rest was on the host);
 *   0.0.10 again: refused on the host where it failed (not retried), failed
 *     in the rollout with that reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { waitFor } from '../support/fixtures.js';
import { jsonLines } from '../support/json-lines.js';
import { repoRoot, run } from '../support/proc.js';
import { Cluster, FABRIC_IP, ensurePrereqs, type FabricProcess } from './harness/index.js';

const PORT = 7443;
const BIN = '/usr/local/bin/ferry-agent';

type Show = {
  rollout: { state: string; paused: boolean; pauseReason: string | null; counts: Record<string, number> };
  hosts: Array<{ hostname: string; state: string; message: string | null }>;
};

describe('e2e: ferry agents upgrade as a rollout on simulated hosts', function () {
  this.timeout(600_000);
  const root = repoRoot();
  const ferryBin = join(root, 'bin', 'ferry.js');
  const current = join(root, 'dist', 'ferry-agent-linux-amd64');
  const oldDir = join(root, 'dist', 'e2e-upgrade-0.0.9');
  const brokenDir = join(root, 'dist', 'e2e-upgrade-broken-0.0.10');
  let cluster: Cluster | undefined;
  let controller: FabricProcess | undefined;
  let data = '';
  let keyFile = '';
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--data', data, ...args], { timeoutMs: 90_000 });

  async function agents(): Promise<Array<{ hostname: string; connected: boolean; agentVersion: string; previousAgentVersion: string | null }>> {
    return jsonLines((await ferry('agents', 'ls', '--json')).stdout);
  }

  async function show(id: string): Promise<Show> {
    return JSON.parse((await ferry('rollout', 'show', id, '--json')).stdout) as Show;
  }

  async function upgrade(...args: string[]): Promise<string> {
    const r = await ferry('agents', 'upgrade', ...args, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return jsonLines<{ id: string }>(r.stdout)[0]!.id;
  }

  before(async function () {
    this.timeout(600_000);
    const pre = await ensurePrereqs({ log: (m) => console.log(`      prereqs: ${m}`) });
    if (!pre.ok) {
      console.log(`      SKIP agent upgrade rollout e2e: ${pre.skipReason}`);
      this.skip();
    }
    for (const args of [['--if-stale', '--arch', 'amd64'], ['--if-stale', '--arch', 'amd64', '--agent-version', '0.0.9', '--out-dir', oldDir],
      ['--if-stale', '--arch', 'amd64', '--agent-version', '0.0.10', '--test-fail-start', '--out-dir', brokenDir]]) {
      const b = spawnSync(process.execPath, [join(root, 'scripts', 'build-agent.mjs'), ...args], { cwd: root, encoding: 'utf8' });
      assert.equal(b.status, 0, b.stdout + b.stderr);
    }
    assert.ok(existsSync(current));
    cluster = await Cluster.create({ hosts: 2, name: 'agentroll' });
    data = join(cluster.dir, 'controller');
    controller = cluster.runInFabric([process.execPath, ferryBin, 'controller', 'start', '--data', data, '--listen', `${FABRIC_IP}:${PORT}`, '--heartbeat', '1s']);
    await controller.waitForOutput(/CA pin:/, 30_000);
    const key = generateSigningKey();
    const { writeFileSync } = await import('node:fs');
    keyFile = join(cluster.dir, 'ops.key');
    writeFileSync(keyFile, key.privatePem, { mode: 0o600 });
    writeFileSync(join(cluster.dir, 'ops.pub'), key.publicPem);
    // The key first: hosts pin the operator keys at enrollment.
    assert.equal((await ferry('key', 'add', join(cluster.dir, 'ops.pub'))).code, 0);
    const t = await ferry('token', 'create', '--ttl', '10m', '--uses', '2', '--label', 'role=edge');
    const js = /ferry-agent join (\S+)/.exec(t.stdout)![1]!;
    for (const h of cluster.hosts) {
      await h.copyIn(join(oldDir, 'ferry-agent-linux-amd64'), BIN, 0o755);
      await h.execOk([BIN, 'join', js]);
      await h.execOk([BIN, 'install-service']);
      await h.waitActive('ferry-agent.service', 20_000);
    }
    await waitFor(async () => (await agents()).filter((a) => a.connected && a.agentVersion === '0.0.9').length === 2, 60_000, 'both hosts on 0.0.9');
    for (const bin of [current, join(brokenDir, 'ferry-agent-linux-amd64')]) {
      const r = await ferry('agents', 'release', 'add', bin, '--key', keyFile);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
  });

  after(async () => {
    await cluster?.destroy({ graceful: false });
  });

  it('a release that exits at start: the wave-1 host rolls back, counts as failed with its log lines, and the rollout pauses', async () => {
    const id = await upgrade('--to', '0.0.10', '--all', '--waves', '1,100%', '--window', '30s');
    let s: Show | undefined;
    await waitFor(async () => {
      s = await show(id);
      return s.rollout.paused && s.hosts.some((h) => h.state === 'failed');
    }, 180_000, 'wave 1 failed');
    const failed = s!.hosts.find((h) => h.state === 'failed')!;
    assert.match(failed.message!, /^rolled-back \(UPGRADE_ROLLED_BACK\): .*the new version exited/);
    assert.match(failed.message!, /panic: this agent was built with --test-fail-start/);
    assert.deepEqual(s!.hosts.filter((h) => h.state !== 'failed').map((h) => h.state), ['pending'], 'wave 2 never started');
    assert.match(s!.rollout.pauseReason ?? '', /error budget exceeded/);
    // Its log in the rollout: staged, switched, rolled back, then the new version's last lines.
    const logs = (await ferry('rollout', 'logs', id, '--host', failed.hostname)).stdout;
    assert.match(logs, /^upgrade 0\.0\.9 → 0\.0\.10: staging the release\nupgrade 0\.0\.9 → 0\.0\.10: release staged and verified: [\d.]+ MiB fetched of [\d.]+ MiB/);
    assert.match(logs, /\nupgrade 0\.0\.9 → 0\.0\.10: switched to 0\.0\.10; restarting through systemd; it must reconnect within 30\.0s or 0\.0\.9 is restored\n/);
    assert.match(logs, /\nupgrade 0\.0\.9 → 0\.0\.10 rolled-back \(UPGRADE_ROLLED_BACK\): .*the new version exited.*\nlast log lines of 0\.0\.10:\n(\| .*\n)*\| .*panic: this agent was built with --test-fail-start/s);
    // The host is back on 0.0.9 and connected.
    await waitFor(async () => (await agents()).every((a) => a.connected && a.agentVersion === '0.0.9'), 60_000, 'rolled back to 0.0.9');
    assert.equal((await ferry('rollout', 'abort', id)).code, 0);
    await waitFor(async () => (await show(id)).rollout.state === 'aborted', 30_000, 'aborted');
  });

  it('a good release: every host stages only what it lacks, commits after reconnecting, and the rollout succeeds', async () => {
    const id = await upgrade('--to', '0.1.0', '--selector', 'role=edge', '--waves', '1,100%');
    await waitFor(async () => ['succeeded', 'failed'].includes((await show(id)).rollout.state), 240_000, 'the rollout ended');
    const s = await show(id);
    assert.equal(s.rollout.state, 'succeeded', JSON.stringify(s.hosts));
    for (const h of s.hosts) assert.match(h.message!, /^0\.0\.9 → 0\.1\.0 committed: reconnected and passed its self-check/);
    const logs = (await ferry('rollout', 'logs', id, '--host', s.hosts[0]!.hostname)).stdout;
    assert.match(logs, /: release staged and verified: .*\n.*: switched to 0\.1\.0; restarting through systemd.*\nupgrade 0\.0\.9 → 0\.1\.0 committed: reconnected and passed its self-check\n$/);
    const list = await agents();
    assert.deepEqual(list.map((a) => [a.connected, a.agentVersion, a.previousAgentVersion]), [[true, '0.1.0', '0.0.9'], [true, '0.1.0', '0.0.9']]);
    // Chunks of the running 0.0.9 binary were reused: the host fetched a small part of the release.
    for (const h of cluster!.hosts) {
      const log = await h.execOk(['journalctl', '-u', 'ferry-agent', '-o', 'cat', '--no-pager']);
      const staged = log.split('\n').filter((l) => l.includes('"msg":"bundle staged"') && l.includes('fetched'));
      const last = JSON.parse(staged.at(-1)!) as { fetched: number; reused: number };
      assert.ok(last.fetched < last.reused / 2, `${h.name}: fetched ${last.fetched}, reused ${last.reused}`);
    }
  });

  it('the broken release again: refused where it was rolled back before, counted as failed with the reason', async () => {
    const id = await upgrade('--to', '0.0.10', '--all', '--error-budget', '100%');
    await waitFor(async () => ['succeeded', 'failed'].includes((await show(id)).rollout.state), 240_000, 'the rollout ended');
    const s = await show(id);
    const refused = s.hosts.filter((h) => /^refused \(UPGRADE_REFUSED\): ferry-agent 0\.0\.10 was rolled back on this host/.test(h.message ?? ''));
    assert.equal(refused.length, 1, JSON.stringify(s.hosts));
    assert.equal(s.rollout.state, 'failed');
  });
});
