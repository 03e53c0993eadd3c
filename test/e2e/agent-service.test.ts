/**
 * The shipped agent on simulated hosts: the single binary joins from inside
 * each host, installs itself as a systemd unit, connects over the fabric to a
 * controller on 10.77.0.1, runs `ferry exec`, survives a cut cable without
 * losing output, and stops cleanly under systemd. Skips when not root.
 */
import assert from 'node:assert/strict';
import { jsonLines } from '../support/json-lines.js';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, FABRIC_IP, ensurePrereqs, type FabricProcess, type Host } from './harness/index.js';
import { daemon, repoRoot, run } from '../support/proc.js';
import { waitFor } from '../support/fixtures.js';

const PORT = 7443;

describe('e2e: agent binary as a systemd service on simulated hosts', function () {
  this.timeout(300_000);
  const root = repoRoot();
  const binary = join(root, 'dist', 'ferry-agent');
  const ferryBin = join(root, 'bin', 'ferry.js');
  let cluster: Cluster | undefined;
  let controller: FabricProcess | undefined;
  let data = '';
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--data', data, ...args], { timeoutMs: 60_000 });

  before(async function () {
    this.timeout(600_000);
    const pre = await ensurePrereqs({ log: (m) => console.log(`      prereqs: ${m}`) });
    if (!pre.ok) {
      console.log(`      SKIP agent service e2e: ${pre.skipReason}`);
      this.skip();
    }
    const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-agent.mjs'), '--if-stale'], { cwd: root, encoding: 'utf8' });
    assert.equal(build.status, 0, build.stderr);
    assert.ok(existsSync(binary));
    cluster = await Cluster.create({ hosts: 2, name: 'agentsvc' });
    data = join(cluster.dir, 'controller');
    controller = cluster.runInFabric([process.execPath, ferryBin, 'controller', 'start', '--data', data,
      '--listen', `${FABRIC_IP}:${PORT}`, '--heartbeat', '1s']);
    await controller.waitForOutput(/CA pin:/, 30_000);
  });

  after(async () => {
    await cluster?.destroy({ graceful: false });
  });

  it('joins from inside each host and runs as a systemd unit', async () => {
    const t = await ferry('token', 'create', '--ttl', '10m', '--uses', '2', '--label', 'role=edge');
    assert.equal(t.code, 0, t.stderr);
    // stdout is the whole command; the host runs it as pasted (no quotes needed).
    const cmd = new RegExp(`^ferry-agent join (ferry1/${FABRIC_IP.replace(/\./g, '\\.')}:${PORT}/\\S+)$`).exec(t.stdout.trim());
    assert.ok(cmd, t.stdout);
    const js = cmd[1]!;
    for (const h of cluster!.hosts) {
      await h.copyIn(binary, '/usr/local/bin/ferry-agent', 0o755);
      const j = await h.exec(['/usr/local/bin/ferry-agent', 'join', js]);
      assert.equal(j.exitCode, 0, j.stderr);
      assert.equal((await h.execOk(['stat', '-c', '%a', '/var/lib/ferry-agent/agent.key'])).trim(), '600');
      const inst = await h.exec(['/usr/local/bin/ferry-agent', 'install-service']);
      assert.equal(inst.exitCode, 0, inst.stderr);
      await h.waitActive('ferry-agent.service', 20_000);
    }
    await waitFor(async () => {
      const ls = await ferry('agents', 'ls', '--json');
      const agents = jsonLines<{ hostname: string; connected: boolean }>(ls.stdout);
      return agents.filter((a) => a.connected).map((a) => a.hostname).sort().join(',') === cluster!.hosts.map((h) => h.name).sort().join(',');
    }, 30_000, 'both hosts connected');
    const st = await cluster!.hosts[0]!.exec(['/usr/local/bin/ferry-agent', 'status']);
    assert.equal(st.exitCode, 0, st.stdout + st.stderr);
    assert.match(st.stdout, new RegExp(`connected to ${FABRIC_IP.replace(/\./g, '\\.')}:${PORT}`));
  });

  it('runs ferry exec on the hosts themselves and reports their facts', async () => {
    const r = await ferry('exec', '--selector', 'role=edge', '--', 'sh', '-c', 'echo "$(hostname) $(systemctl is-active ferry-agent)"');
    assert.equal(r.code, 0, r.stderr);
    for (const h of cluster!.hosts) assert.match(r.stdout, new RegExp(`^${h.name} \\| ${h.name} active$`, 'm'));
    const ls = jsonLines<{ facts: { tools: Array<{ name: string; present: boolean }>; interfaces: Array<{ addresses: string[] }> } }>((await ferry('agents', 'ls', '--json')).stdout);
    for (const a of ls) {
      assert.ok(a.facts.tools.some((t) => t.name === 'systemd' && t.present));
      assert.ok(a.facts.interfaces.some((i) => i.addresses.some((x) => x.startsWith('10.77.0.'))));
    }
  });

  it('loses no output when a host\'s cable is cut mid-command', async () => {
    const h: Host = cluster!.hosts[0]!;
    const n = 40;
    const cli = daemon([process.execPath, ferryBin, '--data', data, 'exec', '--selector', `ferry/hostname=${h.name}`, '--timeout', '90s', '--',
      'sh', '-c', `i=1; while [ $i -le ${n} ]; do echo line-$i; i=$((i+1)); sleep 0.1; done`]);
    // Cut only once the command is surely running on the host (its first lines arrived).
    await waitFor(() => cli.out().includes('line-3'), 30_000, 'the command running on the host');
    await h.cutCable();
    await new Promise((r) => setTimeout(r, 4500)); // past 3 heartbeats: both sides drop the session
    await h.restoreCable();
    assert.equal(await cli.exited, 0, cli.out());
    const r = { stdout: cli.out() };
    const lines = r.stdout.split('\n').filter((l) => l.includes('line-')).map((l) => l.split(' | ')[1]);
    assert.deepEqual(lines, Array.from({ length: n }, (_, i) => `line-${i + 1}`));
    // The session really dropped and came back (not just slowed down).
    const journal = await h.execOk(['journalctl', '-u', 'ferry-agent', '-o', 'cat', '--no-pager']);
    assert.ok((journal.match(/connected to the controller/g) ?? []).length >= 2, journal.slice(-2000));
  });

  it('stops cleanly when systemd stops it', async () => {
    const h = cluster!.hosts[1]!;
    await h.systemctl('stop', 'ferry-agent.service');
    const show = await h.execOk(['systemctl', 'show', '-p', 'ExecMainStatus', '-p', 'Result', 'ferry-agent.service']);
    assert.match(show, /ExecMainStatus=0/);
    assert.match(show, /Result=success/);
  });

  it('reset stops the running service and removes the state; uninstall-service removes the unit, twice without harm', async () => {
    const h = cluster!.hosts[0]!;
    await h.waitActive('ferry-agent.service', 20_000);
    const reset = await h.exec(['/usr/local/bin/ferry-agent', 'reset', '--yes']);
    assert.equal(reset.exitCode, 0, reset.stdout + reset.stderr);
    assert.match(reset.stdout, /stopped ferry-agent\.service[\s\S]*removed \/var\/lib\/ferry-agent/);
    assert.match(reset.stdout, /told the controller at 10\.77\.0\.1:\d+: agent \S+ is revoked there/);
    assert.notEqual((await h.exec(['test', '-e', '/var/lib/ferry-agent'])).exitCode, 0, 'state directory removed');
    assert.notEqual((await h.exec(['systemctl', 'is-active', 'ferry-agent.service'])).exitCode, 0, 'service stopped');
    const un = await h.exec(['/usr/local/bin/ferry-agent', 'uninstall-service']);
    assert.equal(un.exitCode, 0, un.stdout + un.stderr);
    assert.notEqual((await h.exec(['test', '-e', '/etc/systemd/system/ferry-agent.service'])).exitCode, 0, 'unit removed');
    assert.notEqual((await h.exec(['systemctl', 'is-enabled', 'ferry-agent.service'])).exitCode, 0, 'unit no longer enabled');
    const again = await h.exec(['/usr/local/bin/ferry-agent', 'uninstall-service']);
    assert.equal(again.exitCode, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /not installed.*nothing to do/);
  });
});
