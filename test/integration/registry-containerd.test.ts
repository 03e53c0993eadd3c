import 'reflect-metadata';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { buildImage, dockerArchive, ociArchive } from '../e2e/harness/oci-image.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { run, type Daemon } from '../support/proc.js';
import { certDir, commitImageBundle, registryCounts, startPrivateContainerd } from '../support/registry.js';

/**
 * A TCP forwarder that cuts every connection once `limit` bytes have gone
 * from the server to the client, and refuses new ones until reset: an
 * interrupted pull, at a byte count rather than a moment.
 */
class CuttingProxy {
  private sent = 0;
  private readonly sockets = new Set<Socket>();
  limit = Infinity;
  private constructor(private readonly server: Server, readonly port: number) {}
  static async start(target: number): Promise<CuttingProxy> {
    let self: CuttingProxy | undefined;
    const server = createServer((client) => {
      if (self!.sent >= self!.limit) return client.destroy();
      const up = connect({ host: '127.0.0.1', port: target });
      for (const s of [client, up]) {
        self!.sockets.add(s);
        s.on('close', () => self!.sockets.delete(s));
        s.on('error', () => { client.destroy(); up.destroy(); });
      }
      client.pipe(up);
      up.on('data', (d: Buffer) => {
        self!.sent += d.length;
        if (self!.sent >= self!.limit) for (const s of self!.sockets) s.destroy();
        else client.write(d);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    self = new CuttingProxy(server, (server.address() as { port: number }).port);
    return self;
  }
  reset(limit = Infinity): void { this.sent = 0; this.limit = limit; }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe('registry: containerd pulls through hosts.toml, and resumes an interrupted pull with Range', function () {
  this.timeout(180_000);
  let c: Controller;
  let admin: Admin;
  let containerd: Daemon;
  let proxy: CuttingProxy;
  let dir: string;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const small = buildImage({ ref: 'ferry/small:1.0', architecture: 'amd64', layers: [[{ path: 'etc/small', content: 'small\n' }]] });
  const big = buildImage({ ref: 'ferry/big:1.0', architecture: 'amd64', layers: [[{ path: 'big.bin', content: randomBytes(8 << 20) }]] });
  const legacy = buildImage({ ref: 'ferry/legacy:1.0', architecture: 'amd64', layers: [[{ path: 'etc/legacy', content: 'legacy\n' }]] });
  const ctr = (...a: string[]) => run(['ctr', '--address', join(dir, 'containerd.sock'), '--namespace', 'ferrytest', ...a], { timeoutMs: 90_000 });
  const pull = (ref: string) => ctr('images', 'pull', '--hosts-dir', join(dir, 'certs.d'), '--snapshotter', 'native', ref);

  before(async function () {
    dir = tempDir('ferry-ctr-');
    c = await startController({ 'registry-addr': '127.0.0.1:0' });
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    const a = await enrollAgent(c, 'node-1', { start: false });
    agents.push(a);
    await commitImageBundle(c, 'imgs', '1.0', {
      'images/small.tar': ociArchive([small]), 'images/big.tar': ociArchive([big]), 'images/legacy.tar': dockerArchive([legacy]),
    }, key.privatePem);
    await admin.call(admin.client.publishBundle, { name: 'imgs', version: '1.0', as: [], anonymous: false });
    proxy = await CuttingProxy.start(c.registry!.port);
    // The hosts.toml a host gets: Ferry as the only place docker.io images come from (no server line; containerd still tries registry-1.docker.io after it, which fails here: no DNS, docs/mirror.md).
    const certs = certDir(join(dir, 'client'), { certPem: readFileSync(a.state.certPath, 'utf8'), keyPem: readFileSync(a.state.keyPath, 'utf8'), caPem: c.ctx.ca.certPem });
    mkdirSync(join(dir, 'certs.d/docker.io'), { recursive: true });
    writeFileSync(join(dir, 'certs.d/docker.io/hosts.toml'), [
      `[host."https://127.0.0.1:${proxy.port}"]`,
      '  capabilities = ["pull", "resolve"]',
      `  ca = "${join(certs, 'ca.crt')}"`,
      `  client = [["${join(certs, 'client.cert')}", "${join(certs, 'client.key')}"]]`,
      '  dial_timeout = "3s"',
      '',
    ].join('\n'));
    // No garbage collection during the test: ctr drops its lease when a pull fails, and a collection
    // would then remove the partial ingest that the next pull resumes from.
    containerd = await startPrivateContainerd(dir, ['[plugins."io.containerd.gc.v1.scheduler"]', '  startup_delay = "1h"', '  mutation_threshold = 1000000', '  deletion_threshold = 0']);
  });
  beforeEach(() => proxy.reset());
  after(async () => {
    containerd?.proc.kill('SIGTERM');
    await containerd?.exited;
    await proxy?.close();
    admin?.close();
    await cleanup(c, agents);
  });

  it('ctr images pull --hosts-dir resolves and fetches only through Ferry, with the stored digest', async () => {
    const r = await pull('docker.io/ferry/small:1.0');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ls = await ctr('images', 'ls');
    assert.match(ls.stdout, new RegExp(`docker.io/ferry/small:1.0\\s+\\S+\\s+${small.manifestDigest}`));
  });

  it('an interrupted pull resumes with Range instead of starting over', async () => {
    const layer = big.layers[0]!.length;
    // containerd keeps what arrived in an ingest of the layer; wait until the daemon has it (ctr's stream may still be closing).
    const layerRef = big.layerDigests[0]!.slice(7);
    // How much of the layer the ingest holds (ctr prints it rounded, e.g. "1.049 MB"): what the second pull need not move.
    let held = 0;
    let seen = '';
    const holding = async (): Promise<boolean> => {
      const active = await ctr('content', 'active');
      seen = `ctr content active: exit ${active.code}, ${JSON.stringify((active.stdout + active.stderr).trim().slice(-600))}`;
      const line = active.stdout.split('\n').find((l) => l.includes(layerRef)) ?? '';
      const m = /\s(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|KiB|MiB|GiB)\s/.exec(line);
      const unit: Record<string, number> = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1 << 20, GiB: 1 << 30 };
      held = m ? Number(m[1]) * unit[m[2]!]! : 0;
      return held > 0;
    };
    // The cut is at a byte count, but once in a full-suite run (1 in ~3) no ingest of the layer showed up
    // within 20 s of it; a cut pull is cheap, so up to three are made before the resume is tested, and a
    // failure says what ctr and containerd reported.
    const cuts: string[] = [];
    for (let attempt = 1; attempt <= 3 && held === 0; attempt++) {
      proxy.reset(3 << 20);
      const cut = await pull('docker.io/ferry/big:1.0');
      assert.notEqual(cut.code, 0, 'the first pull is cut off');
      cuts.push(`cut pull ${attempt}: exit ${cut.code}, ${JSON.stringify(cut.stderr.trim().slice(-300))}`);
      await waitFor(holding, 10_000, 'a partial ingest of the cut layer').catch(() => undefined);
    }
    assert.ok(held > 0, `no partial ingest of the cut layer after ${cuts.length} cut pulls:\n${cuts.join('\n')}\n${seen}`);
    const PARTIAL = 'ferry_registry_requests_total{kind="blob",code="206"}';
    const before = await registryCounts(c);
    proxy.reset();
    const r = await pull('docker.io/ferry/big:1.0');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // A response is counted once the server has handed its last byte to the socket, which can be just after ctr is done.
    await waitFor(async () => (await registryCounts(c)).get(PARTIAL) > before.get(PARTIAL), 10_000, 'containerd asking for the rest with Range (a 206 counted)');
    const after = await registryCounts(c);
    // Nothing else pulls meanwhile: every byte served since `before` belongs to the second pull.
    const second = after.sum('ferry_registry_bytes_served_total') - before.sum('ferry_registry_bytes_served_total');
    // The manifest and config come again (a few KiB); of the layer only what the ingest did not hold.
    assert.ok(second <= layer - held + (64 << 10), `the second pull moved ${second} bytes of a ${layer}-byte layer whose ingest held ~${held}`);
    const ls = await ctr('images', 'ls');
    assert.match(ls.stdout, new RegExp(`docker.io/ferry/big:1.0\\s+\\S+\\s+${big.manifestDigest}`));
  });

  it('a docker-archive: Ferry serves a derived manifest whose digest differs from ctr import\'s, with the same config and layers', async () => {
    const r = await pull('docker.io/ferry/legacy:1.0');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ferryDigest = (c.registry && (await c.ctx.registry.tagDigest('docker.io/ferry/legacy', '1.0')))!;
    const tar = join(dir, 'legacy.tar');
    writeFileSync(tar, dockerArchive([legacy]));
    const imp = await run(['ctr', '--address', join(dir, 'containerd.sock'), '--namespace', 'ferryimport', 'images', 'import', '--no-unpack', tar]);
    assert.equal(imp.code, 0, imp.stderr);
    const ls = await run(['ctr', '--address', join(dir, 'containerd.sock'), '--namespace', 'ferryimport', 'images', 'ls']);
    const imported = /docker\.io\/ferry\/legacy:1\.0\s+\S+\s+(sha256:[0-9a-f]{64})/.exec(ls.stdout)?.[1];
    assert.ok(imported, ls.stdout);
    assert.notEqual(imported, ferryDigest, 'ctr import writes its own manifest (docker media types), so the digests differ (docs/registry.md)');
    const body = await run(['ctr', '--address', join(dir, 'containerd.sock'), '--namespace', 'ferryimport', 'content', 'get', imported!]);
    const m = JSON.parse(body.stdout) as { config: { digest: string }; layers: Array<{ digest: string }> };
    assert.equal(m.config.digest, legacy.configDigest, 'the image ID (config digest) is the same');
    const ours = JSON.parse((await c.ctx.registry.manifest('docker.io/ferry/legacy', ferryDigest))!.body.toString()) as typeof m;
    assert.deepEqual(m.layers.map((l) => l.digest), ours.layers.map((l) => l.digest), 'and so are the layer digests');
  });
});
