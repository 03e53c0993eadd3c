/**
 * containerd.mirror and hosts.entry on a simulated host with real containerd, against a real
 * TLS registry that demands client certificates (test/e2e/support/pull-registry.ts: Debian's
 * docker-registry today, Ferry's registry endpoint once it lands — same certificates, same
 * assertions). The host pins sea.hub to the fabric address, the step writes hosts.toml files
 * naming the agent's fleet certificate, sets config_path and restarts containerd, and
 * `ctr images pull --hosts-dir` pulls images reachable only through those files. Skips when
 * not root.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { Cluster, FABRIC_IP, ensurePrereqs, writeOciArchive, type Host, type ImageSpec } from '../harness/index.js';
import { startDistributionRegistry, type PullRegistry } from '../support/pull-registry.js';
import { runStep, summary } from './step-host.js';

const FLEET_DIR = '/var/lib/ferry-agent';
const PORT = 5443;
const LVSCARE = 'sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8';
const HELLO = 'docker.io/library/hello:1.0';
const spec = (ref: string, text: string): ImageSpec => ({
  ref, layers: [[{ path: 'etc/ferry/hello.txt', content: text }]], config: { Cmd: ['/bin/true'] },
});

describe('e2e steps: containerd.mirror + hosts.entry, pulling from a TLS registry with client certificates', function () {
  this.timeout(240_000);
  let cluster: Cluster | undefined;
  let h: Host;
  let registry: PullRegistry | undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'ferry-mirror-e2e-'));
  const mirrorArgs = (extra: Record<string, unknown> = {}) => ({
    mirrors: [`https://sea.hub:${PORT}`], upstreams: ['sea.hub:5000', 'docker.io'], dialTimeout: '2s', ...extra,
  });
  const pull = (ref: string, hostsDir = '/etc/containerd/certs.d') =>
    h.exec(['ctr', '-n', 'k8s.io', 'images', 'pull', '--hosts-dir', hostsDir, ref], { timeoutMs: 60_000 });
  const digestOf = async (ref: string) => (await h.execOk(['ctr', '-n', 'k8s.io', 'images', 'ls'])).split('\n')
    .map((l) => l.split(/\s+/)).find((c) => c[0] === ref)?.[2];
  const removeImages = () => h.exec(['ctr', '-n', 'k8s.io', 'images', 'rm', LVSCARE, HELLO]);

  before(async function () {
    this.timeout(600_000);
    const pre = await ensurePrereqs();
    if (!pre.ok) {
      console.log(`      SKIP containerd.mirror e2e: ${pre.skipReason}`);
      this.skip();
    }
    const t0 = Date.now();
    cluster = await Cluster.create({ hosts: 1 });
    h = cluster.host('h1');
    await h.enableContainerd();
    writeOciArchive(join(tmp, 'lvscare.tar'), spec(LVSCARE, 'lvscare\n'));
    writeOciArchive(join(tmp, 'hello.tar'), spec(HELLO, 'hello\n'));
    const reg = await startDistributionRegistry(cluster, tmp, {
      port: PORT, names: ['sea.hub'],
      pushes: [
        { archive: join(tmp, 'lvscare.tar'), path: 'sealerio/lvscare', tag: 'v1.1.3-beta.8', hostRef: LVSCARE },
        { archive: join(tmp, 'hello.tar'), path: 'library/hello', tag: '1.0', hostRef: HELLO },
      ],
    });
    registry = reg;
    // The agent's state directory as an enrolled agent has it: what "ca: fleet" / "client: fleet" name.
    await h.copyIn(reg.fleet.ca, `${FLEET_DIR}/ca.crt`, 0o600);
    await h.copyIn(reg.fleet.cert, `${FLEET_DIR}/agent.crt`, 0o600);
    await h.copyIn(reg.fleet.key, `${FLEET_DIR}/agent.key`, 0o600);
    console.log(`      host with containerd + docker-registry (TLS, client certs) with 2 images up in ${Date.now() - t0} ms`);
  });

  after(async () => {
    await registry?.stop();
    await cluster?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('hosts.entry pins sea.hub to the registry address: check mode, change, resolves in the host, unchanged', async () => {
    const args = { address: FABRIC_IP, names: ['sea.hub'] };
    const check = await runStep(h, 'hosts.entry', args, { check: true });
    assert.equal(check.outcome.status, 'changed', check.outcome.message);
    assert.match(check.outcome.diff!, new RegExp(`^\\+${FABRIC_IP.replace(/\./g, '\\.')}\\tsea\\.hub\\t# ferry hosts\\.entry$`, 'm'));
    assert.equal((await h.exec(['getent', 'hosts', 'sea.hub'])).exitCode, 2, 'check mode pinned nothing');
    const r = await runStep(h, 'hosts.entry', args);
    console.log(summary('hosts.entry', r));
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    assert.match(await h.execOk(['getent', 'hosts', 'sea.hub']), new RegExp(`^${FABRIC_IP.replace(/\./g, '\\.')}\\s+sea\\.hub`));
    assert.match(await h.readFile('/etc/hosts'), /^127\.0\.0\.1\s+localhost/m, 'other lines kept');
    assert.equal((await runStep(h, 'hosts.entry', args)).outcome.status, 'unchanged');
  });

  it('refuses while config.toml does not point containerd at certs.d, naming the lines to add, and writes nothing', async () => {
    const r = await runStep(h, 'containerd.mirror', mirrorArgs(), { fleet: FLEET_DIR });
    console.log(summary('config_path unset', r));
    assert.equal(r.outcome.status, 'failed');
    assert.equal(r.outcome.errorCode, 'CONFIG');
    assert.match(r.outcome.message, /\[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\]\n {2}config_path = "\/etc\/containerd\/certs\.d"/);
    assert.equal((await h.exec(['test', '-e', '/etc/containerd/certs.d/docker.io/hosts.toml'])).exitCode, 1);
  });

  it('writes hosts.toml per upstream, sets config_path and restarts containerd; a second run is unchanged', async () => {
    const pidBefore = (await h.execOk(['systemctl', 'show', '-p', 'MainPID', '--value', 'containerd'])).trim();
    const check = await runStep(h, 'containerd.mirror', mirrorArgs({ containerdConfig: 'set' }), { check: true, fleet: FLEET_DIR });
    assert.equal(check.outcome.status, 'changed', check.outcome.message);
    assert.match(check.outcome.diff!, /\+\+\+ b?\/etc\/containerd\/certs\.d\/sea\.hub:5000\/hosts\.toml/);
    const r = await runStep(h, 'containerd.mirror', mirrorArgs({ containerdConfig: 'set' }), { fleet: FLEET_DIR });
    console.log(summary('containerd.mirror', r));
    assert.equal(r.outcome.status, 'changed', r.outcome.message);
    assert.match(r.outcome.message, /wrote hosts\.toml for sea\.hub:5000, docker\.io; set config_path = "\/etc\/containerd\/certs\.d" in \/etc\/containerd\/config\.toml; restarted containerd/);
    const doc = parse(await h.readFile('/etc/containerd/certs.d/sea.hub:5000/hosts.toml')) as Record<string, any>;
    assert.equal(doc['server'], undefined, 'offline: no upstream fallback');
    assert.deepEqual(JSON.parse(JSON.stringify(doc['host'][`https://sea.hub:${PORT}`])), {
      capabilities: ['pull', 'resolve'], ca: `${FLEET_DIR}/ca.crt`, client: [[`${FLEET_DIR}/agent.crt`, `${FLEET_DIR}/agent.key`]], dial_timeout: '2s',
    });
    const config = parse(await h.readFile('/etc/containerd/config.toml')) as Record<string, any>;
    assert.equal(config['plugins']['io.containerd.grpc.v1.cri']['registry']['config_path'], '/etc/containerd/certs.d');
    assert.equal(await h.isActive('containerd'), 'active');
    assert.notEqual((await h.execOk(['systemctl', 'show', '-p', 'MainPID', '--value', 'containerd'])).trim(), pidBefore, 'containerd was restarted');
    const again = await runStep(h, 'containerd.mirror', mirrorArgs({ containerdConfig: 'set' }), { fleet: FLEET_DIR });
    assert.equal(again.outcome.status, 'unchanged', again.outcome.message);
  });

  it('ctr pulls both images through the mirror the files name, with the digests the registry serves', async () => {
    await removeImages();
    for (const img of registry!.images) {
      const t0 = Date.now();
      const r = await pull(img.ref);
      assert.equal(r.exitCode, 0, `${img.ref}: ${r.stderr}`);
      console.log(`      pulled ${img.ref} in ${Date.now() - t0} ms`);
      assert.equal(await digestOf(img.ref), img.manifestDigest);
    }
  });

  it('without the hosts.toml files, or with them but no client certificate, the same pulls fail', async () => {
    await removeImages();
    const direct = await pull(LVSCARE, '/etc/containerd/no-such-dir');
    assert.notEqual(direct.exitCode, 0, 'sea.hub:5000 itself serves nothing: only the mirror has the image');
    const anon = await runStep(h, 'containerd.mirror', mirrorArgs({ client: 'none', certsDir: '/etc/containerd/certs-anon.d', containerdConfig: 'skip' }), { fleet: FLEET_DIR });
    assert.equal(anon.outcome.status, 'changed', anon.outcome.message);
    const refused = await pull(LVSCARE, '/etc/containerd/certs-anon.d');
    assert.notEqual(refused.exitCode, 0);
    assert.match(refused.stderr, /certificate|tls|handshake/i, refused.stderr);
    assert.equal(await digestOf(LVSCARE), undefined);
    assert.equal((await pull(LVSCARE)).exitCode, 0, 'and with the fleet certificate it works again');
  });
});
