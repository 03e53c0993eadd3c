/**
 * Agent self-upgrade on a simulated host with real systemd, the real single
 * binary and a real controller over mTLS. One host walks through the cases
 * in order (each starts from the version the previous one left, which the
 * test checks first):
 *
 *   0.0.9 (built with --agent-version) is installed as the service;
 *   good upgrade to 0.1.0 (the current build): reconnects, commits, keeps 0.0.9;
 *   "0.1.1" exits at start: rolled back to 0.1.0, reported with its last log lines;
 *   "0.1.2" starts but never reaches the controller: rolled back after a 10 s window;
 *   0.1.1 again: refused (failed here before), nothing touched; --retry-failed tries it;
 *   kill -9 of the upgrading process and of the agent right after the switch: the
 *   new version comes up through systemd, adopts the upgrade and commits;
 *   host reboot right after the switch: the same, after the boot.
 *
 * The broken versions are shell scripts that answer `version --json` like a
 * ferry-agent and then fail the way a broken release does; from the host's
 * side (systemd, the controller) that is all a broken binary is.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../support/fixtures.js';
import { jsonLines } from '../support/json-lines.js';
import { repoRoot, run } from '../support/proc.js';
import { Cluster, FABRIC_IP, ensurePrereqs, type FabricProcess, type Host } from './harness/index.js';

const PORT = 7443;
const BIN = '/usr/local/bin/ferry-agent';

interface VersionRecord {
  version: string;
  previous: string | null;
  pending: { id: string; phase: string } | null;
  failed: Array<{ version: string; reason: string }>;
  last: { upgradeId: string; from: string; to: string; outcome: string; reason: string; logTail: string[] } | null;
}

/** A stand-in release that says it is `version` and then fails at `run` as `body` does. */
const script = (version: string, body: string) => `#!/bin/sh
case "$1" in
  version) echo '{"version":"${version}","protocolVersion":1,"arch":"amd64"}'; exit 0;;
esac
${body}
`;

describe('e2e: agent self-upgrade with rollback on a simulated host', function () {
  this.timeout(600_000);
  const root = repoRoot();
  const ferryBin = join(root, 'bin', 'ferry.js');
  const current = join(root, 'dist', 'ferry-agent-linux-amd64');
  const oldDir = join(root, 'dist', 'e2e-upgrade-0.0.9');
  const old = join(oldDir, 'ferry-agent-linux-amd64');
  let cluster: Cluster | undefined;
  let controller: FabricProcess | undefined;
  let data = '';
  let h: Host;
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--data', data, ...args], { timeoutMs: 60_000 });

  async function hostVersion(): Promise<VersionRecord> {
    return JSON.parse(await h.execOk([BIN, 'version', '--json'])) as VersionRecord;
  }

  /** Waits until the upgrade `id` has a final outcome on the host, and returns the record. */
  async function settled(id: string, timeoutMs = 120_000): Promise<VersionRecord> {
    let v: VersionRecord | undefined;
    await waitFor(async () => {
      const r = await h.exec([BIN, 'version', '--json']);
      if (r.exitCode !== 0) return false; // the link is being switched, or the binary is a broken stand-in
      v = JSON.parse(r.stdout) as VersionRecord;
      return v.pending === null && v.last?.upgradeId === id && v.last.outcome !== 'in-progress';
    }, timeoutMs, `upgrade ${id} settled`);
    return v!;
  }

  /** The controller sees the agent connected with `version` (and `previous`). */
  async function connectedAs(version: string, previous?: string): Promise<void> {
    await waitFor(async () => {
      const a = jsonLines<{ connected: boolean; agentVersion: string; previousAgentVersion: string | null }>((await ferry('agents', 'ls', '--json')).stdout)[0];
      return Boolean(a?.connected && a.agentVersion === version && (previous === undefined || a.previousAgentVersion === previous));
    }, 60_000, `agent connected as ${version}`);
  }

  /** The controller's record of the host's last upgrade (`ferry agents ls --json`), once it is `upgradeId`'s. */
  async function reported(upgradeId: string): Promise<{ outcome: string; reason: string; logTail: string[]; from: string; to: string }> {
    type Last = { upgradeId: string; outcome: string; reason: string; logTail: string[]; from: string; to: string } | null;
    let last: Last = null;
    await waitFor(async () => {
      last = jsonLines<{ lastUpgrade: Last }>((await ferry('agents', 'ls', '--json')).stdout)[0]?.lastUpgrade ?? null;
      return last?.upgradeId === upgradeId;
    }, 60_000, `the controller told of ${upgradeId}`);
    return last!;
  }

  async function upgrade(binary: string, ...extra: string[]): Promise<{ code: number; upgradeId?: string; out: string }> {
    const r = await h.exec([BIN, 'upgrade', '--binary', binary, '--json', ...extra], { timeoutMs: 120_000 });
    const out = r.stdout + r.stderr;
    return { code: r.exitCode ?? -1, out, upgradeId: r.exitCode === 0 ? (JSON.parse(r.stdout) as { upgradeId: string }).upgradeId : undefined };
  }

  before(async function () {
    this.timeout(600_000);
    const pre = await ensurePrereqs({ log: (m) => console.log(`      prereqs: ${m}`) });
    if (!pre.ok) {
      console.log(`      SKIP agent upgrade e2e: ${pre.skipReason}`);
      this.skip();
    }
    for (const args of [['--if-stale'], ['--if-stale', '--arch', 'amd64', '--agent-version', '0.0.9', '--out-dir', oldDir]]) {
      const b = spawnSync(process.execPath, [join(root, 'scripts', 'build-agent.mjs'), ...args], { cwd: root, encoding: 'utf8' });
      assert.equal(b.status, 0, b.stdout + b.stderr);
    }
    assert.ok(existsSync(current) && existsSync(old));
    cluster = await Cluster.create({ hosts: 1, name: 'agentupg' });
    h = cluster.hosts[0]!;
    data = join(cluster.dir, 'controller');
    controller = cluster.runInFabric([process.execPath, ferryBin, 'controller', 'start', '--data', data, '--listen', `${FABRIC_IP}:${PORT}`, '--heartbeat', '1s']);
    await controller.waitForOutput(/CA pin:/, 30_000);

    const t = await ferry('token', 'create', '--ttl', '10m');
    const js = /ferry-agent join (\S+)/.exec(t.stdout)![1]!;
    await h.copyIn(old, BIN, 0o755);
    await h.copyIn(current, '/root/ferry-agent-0.1.0', 0o755);
    await h.writeFile('/root/crash-0.1.1', script('0.1.1', 'echo "panic: simulated crash at start of 0.1.1" >&2\nexit 70'), 0o755);
    await h.writeFile('/root/mute-0.1.2', script('0.1.2', 'echo "0.1.2: dialing a controller that is not there"\nexec sleep 3600'), 0o755);
    await h.execOk([BIN, 'join', js]);
    await h.execOk([BIN, 'install-service']);
    await h.waitActive('ferry-agent.service', 20_000);
    await connectedAs('0.0.9');
  });

  after(async () => {
    await cluster?.destroy({ graceful: false });
  });

  it('a good upgrade: the new version reconnects over mTLS, commits, and the previous one is kept', async () => {
    const u = await upgrade('/root/ferry-agent-0.1.0');
    assert.equal(u.code, 0, u.out);
    const v = await settled(u.upgradeId!);
    assert.equal(v.last!.outcome, 'committed', JSON.stringify(v.last));
    assert.deepEqual([v.version, v.previous], ['0.1.0', '0.0.9']);
    assert.equal((await h.execOk(['readlink', BIN])).trim(), '/var/lib/ferry-agent/versions/0.1.0/ferry-agent');
    assert.equal((await h.execOk(['cat', '/var/lib/ferry-agent/versions/0.1.0/.complete'])).trim().length, 64);
    assert.equal(await h.isActive('ferry-agent.service'), 'active');
    await connectedAs('0.1.0', '0.0.9');
    assert.equal((await reported(u.upgradeId!)).outcome, 'committed');
    const text = await h.execOk([BIN, 'version']);
    assert.match(text, /^ferry-agent 0\.1\.0 \(linux-amd64, protocol 1\)\nprevious: 0\.0\.9\n/);
  });

  it('a version that exits at start is rolled back and reported with its last log lines', async () => {
    const u = await upgrade('/root/crash-0.1.1');
    assert.equal(u.code, 0, u.out);
    const v = await settled(u.upgradeId!);
    assert.equal(v.last!.outcome, 'rolled-back');
    assert.match(v.last!.reason, /the new version exited/);
    assert.ok(v.last!.logTail.some((l) => l.includes('panic: simulated crash at start of 0.1.1')), v.last!.logTail.join('\n'));
    assert.equal(v.version, '0.1.0');
    assert.deepEqual(v.failed.map((f) => f.version), ['0.1.1']);
    assert.equal((await h.execOk(['readlink', BIN])).trim(), '/var/lib/ferry-agent/versions/0.1.0/ferry-agent');
    await connectedAs('0.1.0');
    // The restored version told the controller, with the new version's last log lines.
    const r = await reported(u.upgradeId!);
    assert.deepEqual([r.outcome, r.from, r.to], ['rolled-back', '0.1.0', '0.1.1']);
    assert.ok(r.logTail.some((l) => l.includes('panic: simulated crash at start of 0.1.1')), r.logTail.join('\n'));
    const show = await ferry('agents', 'show', h.name);
    assert.match(show.stdout, /last upgrade:\s+0\.1\.0 -> 0\.1\.1 rolled-back .*the new version exited/);
    assert.match(show.stdout, /its last log lines:\n(.*\n)*\s+panic: simulated crash/);
  });

  it('a version that starts but never reaches the controller is rolled back after the window', async () => {
    const t0 = Date.now();
    const u = await upgrade('/root/mute-0.1.2', '--window', '10s');
    assert.equal(u.code, 0, u.out);
    const v = await settled(u.upgradeId!);
    assert.equal(v.last!.outcome, 'rolled-back');
    assert.match(v.last!.reason, /did not reconnect to the controller and pass its self-check within 10\.0s/);
    assert.ok(Date.now() - t0 >= 10_000, 'not before the window');
    assert.ok(v.last!.logTail.some((l) => l.includes('dialing a controller that is not there')), v.last!.logTail.join('\n'));
    assert.equal(v.version, '0.1.0');
    await connectedAs('0.1.0');
    assert.match((await reported(u.upgradeId!)).reason, /did not reconnect/);
  });

  it('the same broken version is not tried again unless asked (--retry-failed)', async () => {
    const again = await upgrade('/root/crash-0.1.1');
    assert.equal(again.code, 1, again.out);
    assert.match(again.out, /ferry-agent 0\.1\.1 was rolled back on this host at .*not tried again by itself/);
    assert.match(again.out, /--retry-failed/);
    assert.equal((await h.execOk(['readlink', BIN])).trim(), '/var/lib/ferry-agent/versions/0.1.0/ferry-agent', 'nothing switched');
    assert.equal(await h.isActive('ferry-agent.service'), 'active');
    const v = await hostVersion();
    assert.equal(v.last!.outcome, 'refused');
    const retried = await upgrade('/root/crash-0.1.1', '--retry-failed');
    assert.equal(retried.code, 0, retried.out);
    assert.equal((await settled(retried.upgradeId!)).last!.outcome, 'rolled-back');
  });

  it('kill -9 of the upgrading process and of the agent right after the switch: the host ends on the new version, committed', async () => {
    // The upgrade stops right after the switch is written (test hook), as if killed there.
    const cli = h.exec([BIN, 'upgrade', '--binary', '/var/lib/ferry-agent/versions/0.0.9/ferry-agent', '--json'], { env: { FERRY_AGENT_TEST_HOLD_UPGRADE: 'switched' }, timeoutMs: 120_000 });
    await waitFor(async () => (await h.exec(['test', '-e', '/var/lib/ferry-agent/upgrade/held-switched'])).exitCode === 0, 60_000, 'switch done');
    const pid = (await h.execOk(['cat', '/var/lib/ferry-agent/upgrade/held-switched'])).trim();
    await h.execOk(['kill', '-9', pid]);
    await h.execOk(['systemctl', 'kill', '--signal=KILL', 'ferry-agent.service']);
    await cli;
    const id = (await h.execOk(['sh', '-c', 'grep -o \'"id": "[^"]*"\' /var/lib/ferry-agent/upgrade/state.json | head -1 | cut -d\\" -f4'])).trim();
    assert.ok(id.startsWith('local-'), id);
    // systemd restarts the killed agent through the switched path: the new version adopts the upgrade and commits.
    const v = await settled(id);
    assert.equal(v.last!.outcome, 'committed', JSON.stringify(v.last));
    assert.deepEqual([v.version, v.previous], ['0.0.9', '0.1.0']);
    await connectedAs('0.0.9', '0.1.0');
    const journal = await h.execOk(['journalctl', '-u', 'ferry-agent', '-o', 'cat', '--no-pager', '-n', '200']);
    // The guard (ExecStartPre of the old binary) started the watcher before the new version ran.
    assert.match(journal, /upgrade in flight without a watcher; starting one/);
  });

  it('a host reboot right after the switch: the new version comes up at boot and commits', async () => {
    await h.execOk(['rm', '-f', '/var/lib/ferry-agent/upgrade/held-switched']);
    const cli = h.exec([BIN, 'upgrade', '--binary', '/var/lib/ferry-agent/versions/0.1.0/ferry-agent', '--json'], { env: { FERRY_AGENT_TEST_HOLD_UPGRADE: 'switched' }, timeoutMs: 120_000 })
      .catch(() => undefined);
    await waitFor(async () => (await h.exec(['test', '-e', '/var/lib/ferry-agent/upgrade/held-switched'])).exitCode === 0, 60_000, 'switch done');
    const id = (await h.execOk(['sh', '-c', 'grep -o \'"id": "[^"]*"\' /var/lib/ferry-agent/upgrade/state.json | head -1 | cut -d\\" -f4'])).trim();
    await h.reboot(120_000);
    await cli;
    const v = await settled(id);
    assert.equal(v.last!.outcome, 'committed', JSON.stringify(v.last));
    assert.deepEqual([v.version, v.previous], ['0.1.0', '0.0.9']);
    await connectedAs('0.1.0', '0.0.9');
  });

  it('a reboot right after switching to a version that crashes at start: the guard starts a watcher at boot, which rolls back', async () => {
    await h.execOk(['rm', '-f', '/var/lib/ferry-agent/upgrade/held-switched']);
    const cli = h.exec([BIN, 'upgrade', '--binary', '/root/crash-0.1.1', '--retry-failed', '--json'], { env: { FERRY_AGENT_TEST_HOLD_UPGRADE: 'switched' }, timeoutMs: 120_000 })
      .catch(() => undefined);
    await waitFor(async () => (await h.exec(['test', '-e', '/var/lib/ferry-agent/upgrade/held-switched'])).exitCode === 0, 60_000, 'switch done');
    const id = (await h.execOk(['sh', '-c', 'grep -o \'"id": "[^"]*"\' /var/lib/ferry-agent/upgrade/state.json | head -1 | cut -d\\" -f4'])).trim();
    assert.match(await h.execOk(['cat', '/etc/systemd/system/ferry-agent.service.d/ferry-upgrade-guard.conf']), /ExecStartPre=-\/var\/lib\/ferry-agent\/versions\/0\.1\.0\/ferry-agent upgrade-guard/);
    await h.reboot(120_000);
    await cli;
    const v = await settled(id);
    assert.equal(v.last!.outcome, 'rolled-back', JSON.stringify(v.last));
    assert.match(v.last!.reason, /the new version exited/);
    assert.equal(v.version, '0.1.0');
    assert.equal((await h.exec(['test', '-e', '/etc/systemd/system/ferry-agent.service.d/ferry-upgrade-guard.conf'])).exitCode, 1, 'guard removed');
    await h.waitActive('ferry-agent.service', 30_000);
    await connectedAs('0.1.0');
  });
});
