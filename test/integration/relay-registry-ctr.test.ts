import 'reflect-metadata';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { renderHostsToml } from '../../agent/src/steps/util/hosts-toml.js';
import { buildImage, ociArchive } from '../e2e/harness/oci-image.js';
import { cleanup, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { run, type Daemon } from '../support/proc.js';
import { certDir, commitImageBundle, registryCounts, startPrivateContainerd } from '../support/registry.js';
import { enroll } from '../support/relay-agents.js';

describe('relay registry: containerd pulls from its site relay and falls back to the controller', function () {
  this.timeout(180_000);
  let c: Controller;
  let admin: Admin;
  let containerd: Daemon;
  let dir: string;
  let relay: TestAgent;
  let site: TestAgent;
  const key = generateSigningKey();
  const one = buildImage({ ref: 'ferry/one:1.0', architecture: 'amd64', layers: [[{ path: 'one.bin', content: randomBytes(2 << 20) }]] });
  const two = buildImage({ ref: 'ferry/two:1.0', architecture: 'amd64', layers: [[{ path: 'two.bin', content: randomBytes(1 << 20) }]] });
  const ctr = (...a: string[]) => run(['ctr', '--address', join(dir, 'containerd.sock'), '--namespace', 'ferrytest', ...a], { timeoutMs: 90_000 });
  const pull = (ref: string) => ctr('images', 'pull', '--hosts-dir', join(dir, 'certs.d'), '--snapshotter', 'native', ref);
  const cache = () => relay.loop.work.relay.cacheForTests!;

  before(async function () {
    dir = tempDir('ferry-ctr-relay-');
    c = await startController({ 'registry-addr': '127.0.0.1:0' });
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    await commitImageBundle(c, 'imgs', '1.0', { 'images/one.tar': ociArchive([one]), 'images/two.tar': ociArchive([two]) }, key.privatePem);
    await admin.call(admin.client.publishBundle, { name: 'imgs', version: '1.0', as: [], anonymous: false });
    relay = await enroll(c, 'gw-1', { site: 'gw' });
    site = await enroll(c, 'edge-1', { site: 'plant-7' });
    await waitFor(() => [relay, site].every((a) => a.loop.state === 'connected'), 10_000, 'connected');
    await admin.call(admin.client.enableRelay, { host: 'gw-1', serves: 'site=plant-7', cacheBytes: 0, listen: '127.0.0.1:0', advertise: '', registryListen: '127.0.0.1:0' });
    await waitFor(() => (site.loop.work.relays[0]?.registryAddress ?? '') !== '', 15_000, 'the host learns its relay\'s registry address');
    // The hosts.toml containerd.mirror writes for `mirrors: [relay, <controller>]` on this host.
    const certs = certDir(join(dir, 'client'), { certPem: readFileSync(site.state.certPath, 'utf8'), keyPem: readFileSync(site.state.keyPath, 'utf8'), caPem: c.ctx.ca.certPem });
    mkdirSync(join(dir, 'certs.d/docker.io'), { recursive: true });
    writeFileSync(join(dir, 'certs.d/docker.io/hosts.toml'), renderHostsToml({
      upstream: 'docker.io', mirrors: [`https://${site.loop.work.relays[0]!.registryAddress}`, `https://127.0.0.1:${c.registry!.port}`],
      capabilities: ['pull', 'resolve'], ca: join(certs, 'ca.crt'), client: [join(certs, 'client.cert'), join(certs, 'client.key')], dialTimeoutMs: 3000, offline: true,
    }));
    containerd = await startPrivateContainerd(dir);
  });
  after(async () => {
    containerd?.proc.kill('SIGTERM');
    await containerd?.exited;
    admin?.close();
    await cleanup(c, [relay, site]);
  });

  it('ctr images pull --hosts-dir gets the image from the relay; the controller serves it no blob', async () => {
    const before = await registryCounts(c);
    const up = cache().stats().bytesFromUpstream;
    const r = await pull('docker.io/ferry/one:1.0');
    assert.equal(r.code, 0, r.stderr);
    assert.match((await ctr('images', 'ls')).stdout, new RegExp(one.manifestDigest));
    assert.ok(cache().stats().bytesFromUpstream - up >= one.layers[0]!.length, 'the layer came through the relay\'s cache');
    const after = await registryCounts(c);
    assert.equal(after.sum('ferry_registry_requests_total') - before.sum('ferry_registry_requests_total'), 0, 'nothing pulled from the controller\'s own listener');
  });

  it('falls back to the controller when the relay does not answer', async () => {
    await relay.loop.work.relay.registryForTests!.stop();
    const before = await registryCounts(c);
    const r = await pull('docker.io/ferry/two:1.0');
    assert.equal(r.code, 0, r.stderr);
    assert.match((await ctr('images', 'ls')).stdout, new RegExp(two.manifestDigest));
    const after = await registryCounts(c);
    assert.ok(after.sum('ferry_registry_bytes_served_total') - before.sum('ferry_registry_bytes_served_total') >= two.layers[0]!.length, 'the controller served it');
  });
});
