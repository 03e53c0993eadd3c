import 'reflect-metadata';
import assert from 'node:assert/strict';
import { bundleId, generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile, type MemBundle } from '../support/bundles.js';
import { cleanup, enrollAgent, startController, waitFor, type TestAgent } from '../support/fixtures.js';
import { LinkProxy } from '../support/link-proxy.js';
import { controllerChunks, restart, stage, uniqueBytes } from '../support/relay-agents.js';

describe('site relays: the site\'s link to the controller cut', function () {
  this.timeout(60_000);
  let c: Controller;
  let admin: Admin;
  let uplink: LinkProxy;
  const key = generateSigningKey();
  let relay: TestAgent;
  let host: TestAgent;
  let version = 0;

  /** Enrolled, then reaching the controller only through the site's uplink (the relay and the host share it). */
  async function onSite(name: string, labels: Record<string, string>): Promise<TestAgent> {
    const a = await enrollAgent(c, name, { start: false, labels });
    const { identity, keyPem, certPem, caPem } = a.state.load();
    a.state.saveEnrollment(keyPem, certPem, caPem, { ...identity, addresses: [uplink.address] });
    return restart(a);
  }

  async function bundle(mib: number): Promise<MemBundle> {
    const b = memBundle('edge', `1.0.${version++}`, { 'bin/edgecore': randomFile(mib) }, key.privatePem);
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    return b;
  }

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    uplink = await LinkProxy.start(c.address);
    relay = await onSite('gw-1', { site: 'gw' });
    host = await onSite('edge-1', { site: 'plant-7' });
    await waitFor(() => [relay, host].every((a) => a.loop.state === 'connected'), 10_000, 'connected');
    await admin.call(admin.client.enableRelay, { host: 'gw-1', serves: 'site=plant-7', cacheBytes: 0, listen: '127.0.0.1:0', advertise: '', registryListen: '' });
    await waitFor(() => host.loop.work.relays[0]?.address === relay.loop.work.relay.address, 10_000, 'host told its relay');
  });
  after(async () => { admin?.close(); uplink?.restore(); await cleanup(c, [relay, host]); await uplink?.close(); });

  it('what the relay holds still reaches the site\'s hosts; what it lacks fails clearly, and arrives once the link is back, nothing verified fetched twice', async () => {
    const warm = await bundle(4);
    const cold = await bundle(3);
    await stage(relay, warm); // the relay host stages through its own cache: the relay now holds the bundle
    assert.equal(relay.loop.work.relay.cacheForTests!.stats().bytesFromUpstream, uniqueBytes(warm));

    uplink.cut();
    await waitFor(() => relay.loop.state !== 'connected' && host.loop.state !== 'connected', 10_000, 'both sessions down');
    assert.ok(relay.loop.work.relay.address, 'the relay keeps serving its site without its session');

    const p = await stage(host, warm);
    assert.equal(p.bytesFetched, uniqueBytes(warm), 'the cached bundle came from the relay');
    assert.equal(host.loop.work.relayHealth.fallbacks.length, 0);

    await assert.rejects(stage(host, cold), (e: FerryError) => {
      assert.equal(e.code, ErrorCode.Unavailable, e.message);
      return true;
    });
    assert.match(host.loop.work.relayHealth.fallbacks.at(-1)!.reason, /could not get chunk .* from upstream/, 'the relay said why it could not serve');
    assert.ok(!host.loop.work.bundles.isHeld(bundleId(cold.signed)));

    uplink.restore();
    await waitFor(() => relay.loop.state === 'connected' && host.loop.state === 'connected', 10_000, 'sessions back');
    host.loop.work.relayHealth['downUntil'].clear(); // the relay was not to blame: its upstream was
    const chunks0 = await controllerChunks(c);
    const q = await stage(host, cold);
    assert.equal(q.bytesFetched, uniqueBytes(cold));
    assert.equal(await controllerChunks(c) - chunks0, cold.chunks.size, 'each chunk crossed the link once, to the relay');
  });
});
