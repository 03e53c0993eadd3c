import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { bundleId, generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { PrefetchEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { BundleState } from '../../common/src/gen/ferry/v1/session.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile, type MemBundle } from '../support/bundles.js';
import { cleanup, startController, waitFor, type TestAgent } from '../support/fixtures.js';
import { controllerChunks, enroll, stage, uniqueBytes } from '../support/relay-agents.js';

const MiB = 1024 * 1024;

/** A fresh bundle of `mib` MiB pushed to the controller. */
async function pushed(admin: Admin, key: { privatePem: string }, name: string, mib: number): Promise<MemBundle> {
  const b = memBundle(name, '1.0.0', { 'bin/edgecore': randomFile(mib) }, key.privatePem);
  await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
  return b;
}

/** `ferry bundle prefetch` over the admin API; calls `onEvent` for every event, resolves with the last one per host. */
function prefetch(admin: Admin, b: MemBundle, selector: string, onEvent: (ev: PrefetchEvent) => void = () => undefined): Promise<Map<string, PrefetchEvent>> {
  const last = new Map<string, PrefetchEvent>();
  const call = admin.client.prefetch({ name: b.manifest.name, version: b.manifest.version, selector, hosts: [], all: false });
  return new Promise((resolve, reject) => {
    call.on('data', (ev: PrefetchEvent) => { onEvent(ev); if (!ev.final) last.set(ev.agentId, ev); });
    call.on('error', reject);
    call.on('end', () => resolve(last));
  });
}

describe('site relays: prefetch warms the relays first; what a rollout or prefetch needs stays cached', function () {
  this.timeout(60_000);
  const CAP = 16 * MiB;
  let c: Controller;
  let admin: Admin;
  const key = generateSigningKey();
  let relay: TestAgent;
  const site: TestAgent[] = [];
  const cache = () => relay.loop.work.relay.cacheForTests!;

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    // The relay's bandwidth cap: its upstream link is the thin one.
    relay = await enroll(c, 'gw-1', { site: 'gw' }, { bandwidthBytesPerSec: CAP });
    for (let i = 1; i <= 2; i++) site.push(await enroll(c, `edge-${i}`, { site: 'plant-7' }));
    await waitFor(() => [relay, ...site].every((a) => a.loop.state === 'connected'), 10_000, 'connected');
    await admin.call(admin.client.enableRelay, { host: 'gw-1', serves: 'site=plant-7', cacheBytes: 64 * MiB, listen: '127.0.0.1:0', advertise: '', registryListen: '' });
    await waitFor(() => site.every((a) => a.loop.work.relays[0]?.address), 10_000, 'hosts told their relay');
  });
  after(async () => { admin?.close(); await cleanup(c, [relay, ...site]); });

  it('`bundle prefetch`: the relay fetches the bundle first (capped upstream), pinned while it runs; the hosts then only hit', async () => {
    const b = await pushed(admin, key, 'warm', 16);
    const id = bundleId(b.signed);
    const s0 = cache().stats();
    const chunks0 = await controllerChunks(c);
    let pinnedWhileRunning: string[] | undefined;
    const res = await prefetch(admin, b, 'site=plant-7', (ev) => { pinnedWhileRunning ??= cache().pinnedBundles(); void ev; });
    assert.deepEqual([...res.values()].map((e) => e.state), [BundleState.BUNDLE_STATE_READY, BundleState.BUNDLE_STATE_READY]);
    for (const e of res.values()) assert.equal(e.bytesFetched, uniqueBytes(b));
    assert.deepEqual(pinnedWhileRunning, [id], 'the relay was told to keep the bundle while the prefetch ran');
    const s1 = cache().stats();
    assert.equal(s1.bytesFromUpstream - s0.bytesFromUpstream, uniqueBytes(b), 'the relay fetched the bundle once');
    assert.equal(s1.misses - s0.misses, 0, 'no host asked for a chunk the relay did not hold yet: it was warmed first');
    assert.equal(s1.hits - s0.hits, 2 * b.chunks.size);
    assert.equal(await controllerChunks(c) - chunks0, b.chunks.size, 'the controller served each chunk once, to the relay');
    // The cap's token bucket lets a quarter second's worth through at once (agent/src/bundles/token-bucket.ts); the rest waits for the rate.
    const fastest = uniqueBytes(b) / ((uniqueBytes(b) - CAP / 4) / CAP);
    assert.ok(s1.upstreamBytesPerSec <= fastest * 1.1, `the relay's upstream kept to the agent's cap: ${s1.upstreamBytesPerSec} B/s, at most ${Math.round(fastest)} B/s allowed`);
    await waitFor(() => cache().pinnedBundles().length === 0, 5_000, 'unpinned once the prefetch ended');
  });

  it('one prefetch per host at once (as a rollout\'s prefetch phase runs them): each warm-up is answered, the relay fetches the bundle once', async () => {
    const b = await pushed(admin, key, 'per-host', 4);
    const stored = await c.ctx.bundles.require(b.manifest.name, b.manifest.version);
    const up0 = cache().stats().bytesFromUpstream;
    const states = await Promise.all(site.map(async (a) => {
      let last = '';
      await c.ctx.prefetch.run(stored, [{ agentId: a.id, hostname: a.hostname }], (ev) => { last = BundleState[ev.state]; }, AbortSignal.timeout(30_000));
      return last;
    }));
    assert.deepEqual(states, ['BUNDLE_STATE_READY', 'BUNDLE_STATE_READY']);
    assert.equal(cache().stats().bytesFromUpstream - up0, uniqueBytes(b));
  });

  it('a pinned bundle survives cache pressure, unpinned ones go; released, it may go too', async () => {
    const a = await pushed(admin, key, 'pinned', 24);
    const release = c.ctx.relays.pins.pin(bundleId(a.signed)); // as an unfinished rollout holds it
    await waitFor(() => cache().pinnedBundles().includes(bundleId(a.signed)), 5_000, 'pin reached the relay');
    const held = (b: MemBundle) => [...b.chunks.keys()].filter((d) => existsSync(cache().store.pathOf(d))).length;
    await stage(site[0]!, a);
    const more = [await pushed(admin, key, 'other-1', 24), await pushed(admin, key, 'other-2', 24)];
    for (const b of more) await stage(site[1]!, b);
    assert.equal(held(a), a.chunks.size, 'every chunk of the pinned bundle is still cached');
    assert.ok(held(more[0]!) < more[0]!.chunks.size, 'the unpinned bundle staged first lost chunks to the 64 MiB bound');
    assert.ok(cache().stats().usedBytes <= 64 * MiB);
    release();
    await waitFor(() => !cache().pinnedBundles().includes(bundleId(a.signed)), 5_000, 'unpin reached the relay');
    await stage(site[0]!, await pushed(admin, key, 'other-3', 24));
    assert.ok(held(a) < a.chunks.size, 'no longer pinned: its least recently used chunks went');
  });
});

describe('site relays: a chain (a region relay in front of a site relay), and the fallback when the region relay goes', function () {
  this.timeout(60_000);
  let c: Controller;
  let admin: Admin;
  const key = generateSigningKey();
  let region: TestAgent;
  let gw: TestAgent;
  let host: TestAgent;

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    region = await enroll(c, 'region-1', { tier: 'region' });
    gw = await enroll(c, 'gw-a', { site: 'a', tier: 'site-relay' });
    host = await enroll(c, 'h-a', { site: 'a' });
    await waitFor(() => [region, gw, host].every((a) => a.loop.state === 'connected'), 10_000, 'connected');
    await admin.call(admin.client.enableRelay, { host: 'region-1', serves: 'tier=site-relay', cacheBytes: 0, listen: '127.0.0.1:0', advertise: '', registryListen: '' });
    await admin.call(admin.client.enableRelay, { host: 'gw-a', serves: 'site=a', cacheBytes: 0, listen: '127.0.0.1:0', advertise: '', registryListen: '' });
    await waitFor(() => host.loop.work.relays[0]?.agentId === gw.id && gw.loop.work.relays[0]?.agentId === region.id, 10_000, 'chain assigned');
  });
  after(async () => { admin?.close(); await cleanup(c, [region, gw, host]); });

  it('two levels: the host fetches from its site relay, the site relay from the region relay, only the region relay from the controller', async () => {
    assert.deepEqual(host.loop.work.relays.map((r) => r.agentId), [gw.id]);
    assert.deepEqual(region.loop.work.relays, [], 'the region relay fetches from the controller');
    const b = await pushed(admin, key, 'chain', 6);
    const chunks0 = await controllerChunks(c);
    const p = await stage(host, b);
    assert.equal(p.bytesFetched, uniqueBytes(b));
    assert.equal(gw.loop.work.relay.cacheForTests!.stats().bytesFromUpstream, uniqueBytes(b), 'the site relay fetched it once, upstream');
    assert.equal(region.loop.work.relay.cacheForTests!.stats().bytesFromUpstream, uniqueBytes(b), 'the region relay fetched it once, from the controller');
    assert.equal(await controllerChunks(c) - chunks0, b.chunks.size, 'the controller served each chunk once');
    assert.equal(host.loop.work.relayHealth.fallbacks.length + gw.loop.work.relayHealth.fallbacks.length, 0);
  });

  it('the region relay down: the site relay falls back to the controller by itself and the host still gets everything from its site relay', async () => {
    await region.loop.stop(500);
    const b = await pushed(admin, key, 'chain-fallback', 4);
    const chunks0 = await controllerChunks(c);
    const p = await stage(host, b);
    assert.equal(p.bytesFetched, uniqueBytes(b));
    assert.equal(host.loop.work.relayHealth.fallbacks.length, 0, 'the host never left its site relay');
    assert.match(gw.loop.work.relayHealth.fallbacks.at(-1)!.reason, /UNAVAILABLE|CANCELLED|stalled/);
    assert.equal(gw.loop.work.relayHealth.fallbacks.at(-1)!.relay, region.id);
    assert.equal(await controllerChunks(c) - chunks0, b.chunks.size, 'each chunk came from the controller once, to the site relay');
  });
});
