/**
 * `ferry controller install-service` on a simulated host with systemd as
 * PID 1: the unit it writes passes `systemd-analyze verify`, starts a
 * controller that serves gRPC, its admin socket and /readyz under the
 * hardening (no capabilities, read-only system), stops cleanly, and
 * uninstall-service removes it. Skips when not root.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Cluster, ensurePrereqs, type Host } from './harness/index.js';
import { repoRoot } from '../support/proc.js';
import { waitFor } from '../support/fixtures.js';

describe('e2e: the controller as a systemd service on a simulated host', function () {
  this.timeout(300_000);
  const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
  let cluster: Cluster | undefined;
  let h: Host;
  const ferry = (...args: string[]) => h.exec([process.execPath, ferryBin, ...args]);
  /** GET on the host's loopback with the host's node (curl may not be installed); exit 0 only on 2xx. */
  const get = (url: string) => h.exec([process.execPath, '-e',
    `fetch(${JSON.stringify(url)}).then(async (r) => { process.stdout.write(await r.text()); process.exit(r.ok ? 0 : 1); }, () => process.exit(2))`]);

  before(async function () {
    this.timeout(600_000);
    const pre = await ensurePrereqs({ log: (m) => console.log(`      prereqs: ${m}`) });
    if (!pre.ok) {
      console.log(`      SKIP controller service e2e: ${pre.skipReason}`);
      this.skip();
    }
    cluster = await Cluster.create({ hosts: 1, name: 'ctlsvc' });
    h = cluster.hosts[0]!;
  });

  after(async () => {
    await cluster?.destroy({ graceful: false });
  });

  it('--dry-run prints a unit that systemd-analyze verify accepts, and writes nothing', async () => {
    const dry = await ferry('controller', 'install-service', '--data', '/var/lib/ferry', '--http-addr', '127.0.0.1:7444', '--dry-run');
    assert.equal(dry.exitCode, 0, dry.stderr);
    assert.match(dry.stdout, /^ExecStart=\S+ \S+ferry\.js controller start --data \/var\/lib\/ferry --http-addr 127\.0\.0\.1:7444$/m);
    // The console's port counts for the capability like the others; the lease ttl is passed on.
    const more = await ferry('controller', 'install-service', '--data', '/var/lib/ferry', '--console-addr', '0.0.0.0:443', '--lease-ttl', '5s', '--dry-run');
    assert.equal(more.exitCode, 0, more.stderr);
    assert.match(more.stdout, /^ExecStart=.* --console-addr 0\.0\.0\.0:443 --lease-ttl 5s$/m);
    assert.match(more.stdout, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    assert.match(dry.stderr, /dry run: .*\/etc\/systemd\/system\/ferry-controller\.service.*nothing was changed/);
    assert.notEqual((await h.exec(['test', '-e', '/etc/systemd/system/ferry-controller.service'])).exitCode, 0, 'nothing written');
    await h.writeFile('/tmp/ferry-controller.service', dry.stdout);
    const verify = await h.exec(['systemd-analyze', 'verify', '/tmp/ferry-controller.service']);
    assert.equal(verify.exitCode, 0, verify.stdout + verify.stderr);
    assert.equal((verify.stdout + verify.stderr).trim(), '', 'systemd-analyze verify has nothing to say');
  });

  it('installs, enables and starts a controller that serves under the hardening', async () => {
    const inst = await ferry('controller', 'install-service', '--data', '/var/lib/ferry', '--http-addr', '127.0.0.1:7444', '--listen', '0.0.0.0:7443');
    assert.equal(inst.exitCode, 0, inst.stdout + inst.stderr);
    assert.match(inst.stdout, /wrote \/etc\/systemd\/system\/ferry-controller\.service; enabled and started/);
    await h.waitActive('ferry-controller.service', 30_000);
    await waitFor(async () => (await get('http://127.0.0.1:7444/readyz')).exitCode === 0, 30_000, '/readyz answers 200');
    assert.equal((await get('http://127.0.0.1:7444/readyz')).stdout, 'ok store\nok grpc\nready\n');
    const metrics = await get('http://127.0.0.1:7444/metrics');
    assert.equal(metrics.exitCode, 0);
    assert.match(metrics.stdout, /^ferry_agents\{state="online",replica="[^"]+"\} 0$/m);
    // The admin socket works for root on the host: a token is made through it.
    const tok = await ferry('token', 'create', '--data', '/var/lib/ferry', '--ttl', '10m');
    assert.equal(tok.exitCode, 0, tok.stderr);
    assert.match(tok.stdout, /^ferry-agent join ferry1\//);
    // What systemd enforces, as it reports it.
    const show = await h.execOk(['systemctl', 'show', '-p', 'CapabilityBoundingSet', '-p', 'NoNewPrivileges', '-p', 'ProtectSystem', '-p', 'ReadWritePaths', '-p', 'RestartPreventExitStatus', 'ferry-controller.service']);
    assert.match(show, /^CapabilityBoundingSet=$/m);
    assert.match(show, /^NoNewPrivileges=yes$/m);
    assert.match(show, /^ProtectSystem=strict$/m);
    assert.match(show, /^ReadWritePaths=\/var\/lib\/ferry$/m);
    const mode = await h.execOk(['stat', '-c', '%a', '/var/lib/ferry', '/var/lib/ferry/pki/ca.key']);
    assert.deepEqual(mode.trim().split('\n'), ['700', '600']);
    const sec = await h.exec(['systemd-analyze', 'security', '--no-pager', 'ferry-controller.service']);
    const score = /Overall exposure level for ferry-controller\.service: ([\d.]+) (\S+)/.exec(sec.stdout + sec.stderr);
    console.log(`      systemd-analyze security: ${score ? `${score[1]} ${score[2]}` : (sec.stdout + sec.stderr).slice(-300)}`);
    assert.ok(score && Number(score[1]) < 5, `exposure ${score?.[1]}`);
  });

  it('stops cleanly under systemd, and uninstall-service removes the unit, twice without harm', async () => {
    await h.systemctl('stop', 'ferry-controller.service');
    const show = await h.execOk(['systemctl', 'show', '-p', 'ExecMainStatus', '-p', 'Result', 'ferry-controller.service']);
    assert.match(show, /ExecMainStatus=0/);
    assert.match(show, /Result=success/);
    const un = await ferry('controller', 'uninstall-service');
    assert.equal(un.exitCode, 0, un.stdout + un.stderr);
    assert.match(un.stdout, /removed \/etc\/systemd\/system\/ferry-controller\.service/);
    assert.equal((await h.exec(['test', '-d', '/var/lib/ferry/pki'])).exitCode, 0, 'the data directory is kept');
    const again = await ferry('controller', 'uninstall-service');
    assert.equal(again.exitCode, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /not installed.*nothing to do/);
  });
});
