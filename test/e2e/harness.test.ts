/**
 * Proves the simulated-hosts harness with real programs: 3 hosts on one fabric, each with its
 * own address, overlay root, systemd, containerd and iptables. Skips (with the reason) when
 * not root. All traffic stays inside namespaces this test creates (10.77.0.0/24).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Cluster, FABRIC_IP, ensurePrereqs, writeDockerArchive, writeOciArchive,
  type FabricProcess, type Host, type ImageSpec,
} from './harness/index.js';
import { run, waitFor } from './harness/proc.js';

const PORT = 7777;
/** Tiny TCP server for the fabric: answers each connection with the peer's address. */
const SERVER_JS = `
const net = require('net');
net.createServer((c) => c.end(c.remoteAddress + '\\n'))
  .listen(${PORT}, '${FABRIC_IP}', () => console.log('listening on ${FABRIC_IP}:${PORT}'));
`;

/** Connects from inside `h` to ip:port with bash's /dev/tcp and returns what the server said. */
function connect(h: Host, port = PORT, ip = FABRIC_IP, timeoutMs = 3000) {
  return h.exec(['bash', '-c', `exec 3<>/dev/tcp/${ip}/${port} && cat <&3`], { timeoutMs });
}

const mib = (b: number | undefined) => (b === undefined ? 'n/a' : `${(b / 1048576).toFixed(1)} MiB`);

describe('e2e harness: simulated hosts', function () {
  this.timeout(180_000);
  let cluster: Cluster | undefined;
  let server: FabricProcess | undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'ferry-harness-test-'));
  const marker = `/etc/ferry-harness-${process.pid}/marker`;

  before(async function () {
    this.timeout(600_000); // a first run on a clean machine installs Debian packages
    const pre = await ensurePrereqs({ log: (m) => console.log(`      prereqs: ${m}`) });
    if (!pre.ok) {
      console.log(`      SKIP simulated-hosts harness: ${pre.skipReason}`);
      this.skip();
    }
    if (pre.installed.length) console.log(`      installed: ${pre.installed.join(' ')}`);
    const t0 = Date.now();
    cluster = await Cluster.create({ hosts: 3 });
    console.log(`      3 hosts up in ${Date.now() - t0} ms; boot per host: ${
      [...cluster.bootMs].map(([n, ms]) => `${n} ${ms} ms`).join(', ')}`);
    server = cluster.runInFabric(['node', '-e', SERVER_JS]);
    await server.waitForOutput(/listening/);
  });

  after(async () => {
    // Safety net when a test failed before the cleanup test ran; destroy() is idempotent.
    await cluster?.destroy({ graceful: false });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('gives each host its own address and a route to the fabric', async () => {
    for (const h of cluster!.hosts) {
      const addr = await h.execOk(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      assert.match(addr, new RegExp(`inet ${h.ip.replace(/\./g, '\\.')}/24`));
      assert.equal((await h.execOk(['hostname'])).trim(), h.name);
      // The fabric server echoes the peer address: proves the source address, not just reachability.
      const r = await connect(h);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stdout.trim(), h.ip);
    }
    console.log(`      idle memory: ${cluster!.hosts.map((h) => `${h.name} ${mib(h.memoryBytes())}`).join(', ')}`);
  });

  it('keeps each host\'s files to itself', async () => {
    const [h1, h2] = cluster!.hosts as [Host, Host];
    await h1.writeFile(marker, 'only on h1\n', 0o600);
    assert.equal(await h1.readFile(marker), 'only on h1\n');
    assert.equal((await h1.execOk(['stat', '-c', '%a', marker])).trim(), '600');
    assert.notEqual((await h2.exec(['test', '-e', marker])).exitCode, 0, 'h2 sees h1\'s file');
    assert.ok(!existsSync(marker), 'the machine\'s /etc was written');
    // The harness's own directory (every host's upper layer) is hidden inside hosts.
    assert.equal((await h2.execOk(['ls', '-A', cluster!.state.baseDir])).trim(), '');
  });

  it('runs systemd units inside a host', async () => {
    const [h1, h2] = cluster!.hosts as [Host, Host];
    await h1.installUnit('ferry-echo.service', [
      '[Unit]', 'Description=harness test unit', '[Service]',
      "ExecStart=/bin/sh -c 'echo ferry-echo started; exec sleep infinity'", '',
    ].join('\n'), { start: true });
    await h1.waitActive('ferry-echo.service');
    assert.equal(await h1.isActive('ferry-echo.service'), 'active');
    assert.notEqual(await h2.isActive('ferry-echo.service'), 'active');
    await h1.execOk(['systemctl', 'restart', 'ferry-echo.service']);
    await h1.waitActive('ferry-echo.service');
    const log = await h1.execOk(['journalctl', '-u', 'ferry-echo.service', '--no-pager', '-o', 'cat']);
    assert.match(log, /ferry-echo started/);
  });

  it('imports self-built OCI and docker-archive images with ctr into containerd', async () => {
    const h1 = cluster!.host('h1');
    const t0 = Date.now();
    await h1.enableContainerd();
    const containerdMs = Date.now() - t0;
    const spec = (ref: string, text: string): ImageSpec => ({
      ref,
      layers: [[{ path: 'etc/ferry/hello.txt', content: text }, { path: 'usr/local/bin/hello', content: '#!/bin/sh\necho hi\n', mode: 0o755 }]],
      config: { Cmd: ['/usr/local/bin/hello'] },
    });
    const [oci] = writeOciArchive(join(tmp, 'oci.tar'), spec('ferry/harness-oci:1.0', 'oci\n'));
    const [dock] = writeDockerArchive(join(tmp, 'docker.tar'), spec('ferry/harness-docker:1.0', 'docker\n'));
    await h1.copyIn(join(tmp, 'oci.tar'), '/root/images/oci.tar');
    await h1.copyIn(join(tmp, 'docker.tar'), '/root/images/docker.tar');
    for (const f of ['oci.tar', 'docker.tar']) {
      await h1.execOk(['ctr', '-n', 'k8s.io', 'images', 'import', `/root/images/${f}`], { timeoutMs: 60_000 });
    }
    const ls = await h1.execOk(['ctr', '-n', 'k8s.io', 'images', 'ls']);
    const line = ls.split('\n').find((l) => l.startsWith(`${oci!.ref} `));
    assert.ok(line, `${oci!.ref} not in:\n${ls}`);
    assert.ok(line.includes(oci!.manifestDigest), `digest ${oci!.manifestDigest} not in ${line}`);
    assert.ok(ls.split('\n').some((l) => l.startsWith(`${dock!.ref} `)), `${dock!.ref} not in:\n${ls}`);
    // Imported and unpacked into the overlayfs snapshotter, not just listed.
    const check = await h1.execOk(['ctr', '-n', 'k8s.io', 'images', 'check']);
    assert.match(check, new RegExp(`${oci!.ref.replace(/[.:/]/g, '\\$&')}\\s.*complete`));
    assert.equal(await cluster!.host('h2').isActive('containerd.service'), 'inactive');
    console.log(`      containerd start ${containerdMs} ms; h1 with containerd + 2 images: ${mib(h1.memoryBytes())}`);
  });

  it('keeps iptables rules per host', async () => {
    const [h1, h2] = cluster!.hosts as [Host, Host];
    const rule = ['-p', 'tcp', '-d', FABRIC_IP, '--dport', '10350', '-j', 'DNAT', '--to-destination', `${FABRIC_IP}:${PORT}`];
    await h1.execOk(['iptables', '-t', 'nat', '-A', 'OUTPUT', ...rule]);
    assert.equal((await h1.exec(['iptables', '-t', 'nat', '-C', 'OUTPUT', ...rule])).exitCode, 0);
    // The rule really rewrites traffic in h1 ...
    const via = await connect(h1, 10350);
    assert.equal(via.stdout.trim(), h1.ip, via.stderr);
    // ... and exists nowhere else: not in h2, not in the fabric, not on the machine.
    assert.doesNotMatch(await h2.execOk(['iptables', '-t', 'nat', '-S']), /10350/);
    assert.notEqual((await connect(h2, 10350)).exitCode, 0, 'h2 was DNATed by h1\'s rule');
    assert.doesNotMatch((await cluster!.fabricExec(['iptables-save'])).stdout, /10350/);
    const machine = await run(['iptables-save']);
    assert.doesNotMatch(machine.stdout, /10350/);
  });

  it('cuts and restores a host\'s cable', async () => {
    const [, h2, h3] = cluster!.hosts as [Host, Host, Host];
    assert.equal((await connect(h2)).exitCode, 0);
    await h2.cutCable({ reset: true });
    const cut = await connect(h2, PORT, FABRIC_IP, 2000);
    assert.notEqual(cut.exitCode, 0, 'connect succeeded through a cut cable');
    assert.equal((await connect(h3)).stdout.trim(), h3.ip, 'cutting h2 affected h3');
    await h2.restoreCable();
    const t0 = Date.now();
    let back = await connect(h2);
    while (back.exitCode !== 0 && Date.now() - t0 < 10_000) back = await connect(h2);
    assert.equal(back.stdout.trim(), h2.ip, back.stderr);
    const rules = (await cluster!.fabricExec(['iptables', '-S', 'OUTPUT'])).stdout;
    assert.doesNotMatch(rules, /REJECT/, 'reset rule left behind');
  });

  it('powers a host off cleanly even while a command runs inside it', async () => {
    const h2 = cluster!.host('h2');
    // Several at once: whether nsenter catches its child stopped by systemd is a race.
    const inFlight = [1, 2, 3, 4, 5, 6].map((i) => h2.exec(i % 2 ? ['sleep', '60'] : ['bash', '-c', 'read -r x'], { timeoutMs: 70_000 }));
    await waitFor('commands inside h2', async () => (await h2.exec(['pgrep', '-c', '-x', 'sleep'])).stdout.trim() === '3', 5000);
    const t0 = Date.now();
    await h2.stop(15_000);
    const ms = Date.now() - t0;
    console.log(`      h2 graceful stop with a command in flight: ${ms} ms`);
    assert.equal(h2.exitStatus, 0, 'not a clean poweroff (hard-killed after timeout?)');
    assert.ok(ms < 5000, `stop took ${ms} ms`);
    for (const r of await Promise.all(inFlight)) assert.notEqual(r.exitCode, 0);
    cluster!.rememberHostPids(h2, await h2.boot());
    assert.equal((await connect(h2)).stdout.trim(), h2.ip);
  });

  it('keeps a host\'s files across hard kill, offline writes and reboot', async () => {
    const h3 = cluster!.host('h3');
    await h3.writeFile('/etc/ferry/persist.conf', 'survives\n');
    await h3.hardKill();
    assert.equal(h3.running, false);
    assert.equal(h3.pid1(), undefined);
    // While stopped: /bin is a symlink to usr/bin on Debian; an offline write must follow it
    // the way the host would, not replace it with a directory in the upper layer.
    await h3.writeFile('/bin/ferry-offline-tool', '#!/bin/sh\necho offline-ok\n', 0o755);
    assert.equal(await h3.readFile('/etc/ferry/persist.conf'), 'survives\n');
    const st = await h3.boot();
    cluster!.rememberHostPids(h3, st);
    console.log(`      h3 boot after hard kill: ${h3.msSinceBoot} ms (${st!.state})`);
    assert.equal(await h3.readFile('/etc/ferry/persist.conf'), 'survives\n');
    assert.equal((await h3.execOk(['readlink', '/bin'])).trim(), 'usr/bin');
    assert.equal((await h3.execOk(['ferry-offline-tool'])).trim(), 'offline-ok');
    const before = st!.pid1;
    const rb = await h3.reboot();
    cluster!.rememberHostPids(h3, rb);
    assert.notEqual(rb.pid1, before);
    console.log(`      h3 reboot: ${h3.msSinceBoot} ms`);
    assert.equal(await h3.readFile('/etc/ferry/persist.conf'), 'survives\n');
    assert.equal((await connect(h3)).stdout.trim(), h3.ip);
  });

  it('leaves no mounts, namespaces, cgroups, processes or files behind', async () => {
    const c = cluster!;
    const t0 = Date.now();
    await server!.stop();
    await c.destroy();
    console.log(`      destroy: ${Date.now() - t0} ms`);
    assert.deepEqual(c.leftovers(), []);
    assert.ok(!existsSync(marker), 'host file leaked to the machine');
  });
});
