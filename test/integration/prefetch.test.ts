import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { PrefetchEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { BundleState } from '../../common/src/gen/ferry/v1/session.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile, type MemBundle } from '../support/bundles.js';
import { cleanup, enrollAgent, startController, waitFor, type TestAgent } from '../support/fixtures.js';

describe('bundle prefetch to agents', function () {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const files = { 'bin/edgecore': randomFile(6), 'images/edgemesh.tar': randomFile(8), 'manifests/a.yaml': Buffer.from('kind: ConfigMap\n') };

  async function prefetch(b: MemBundle, selector = ''): Promise<Map<string, PrefetchEvent>> {
    const last = new Map<string, PrefetchEvent>();
    const stored = await c.ctx.bundles.require(b.manifest.name, b.manifest.version);
    const all = await c.ctx.agents.list();
    const { parseSelector } = await import('../../common/src/labels.js');
    const targets = all.filter((a) => parseSelector(selector).matches(a.labels)).map((a) => ({ agentId: a.id, hostname: a.hostname }));
    await c.ctx.prefetch.run(stored, targets, (ev) => last.set(ev.agentId, ev), new AbortController().signal);
    return last;
  }

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    for (const h of ['edge-1', 'edge-2']) agents.push(await enrollAgent(c, h, { labels: { role: 'edge' } }));
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'connected');
  });
  after(async () => { admin.close(); await cleanup(c, agents); });

  it('stages a bundle on every matching host with identical files and modes', async () => {
    const v1 = memBundle('edge', '1.0.0', files, key.privatePem);
    await pushBundle(admin, v1.signed, byDigest(async (d) => v1.chunks.get(d)!), { progress: false });
    const res = await prefetch(v1, 'role=edge');
    assert.equal(res.size, 2);
    for (const a of agents) {
      const ev = res.get(a.id)!;
      assert.equal(ev.state, BundleState.BUNDLE_STATE_READY, ev.error);
      const dir = a.loop.work.bundles.filesDir((await c.ctx.bundles.require('edge', '1.0.0')).id);
      for (const [p, data] of Object.entries(files)) {
        assert.ok(readFileSync(join(dir, p)).equals(data), p);
      }
      assert.equal(statSync(join(dir, 'bin/edgecore')).mode & 0o777, 0o755);
    }
    const { agents: listed } = await admin.call(admin.client.listAgents, { selector: 'role=edge', includeRevoked: false });
    assert.ok(listed.every((a) => a.bundles.includes('edge:1.0.0')));
  });

  it('moves nothing for a bundle a host already holds, and only the changed bytes for an upgrade', async () => {
    const v1 = memBundle('edge', '1.0.0', files, key.privatePem);
    const again = await prefetch(v1);
    for (const ev of again.values()) assert.equal(ev.bytesFetched, 0);
    const changed = randomFile(2);
    const v2 = memBundle('edge', '1.1.0', { ...files, 'bin/edgecore': changed }, key.privatePem);
    await pushBundle(admin, v2.signed, byDigest(async (d) => v2.chunks.get(d)!), { progress: false });
    const up = await prefetch(v2);
    for (const ev of up.values()) {
      assert.equal(ev.state, BundleState.BUNDLE_STATE_READY, ev.error);
      assert.ok(ev.bytesFetched <= changed.length * 1.1, `moved ${ev.bytesFetched} for ${changed.length} changed bytes`);
    }
  });

  it('reports offline hosts and keeps going', async () => {
    const off = await enrollAgent(c, 'offline-1', { labels: { role: 'edge' }, start: false });
    const v1 = memBundle('edge', '1.0.0', files, key.privatePem);
    const res = await prefetch(v1, 'role=edge');
    assert.equal(res.get(off.id)!.offline, true);
    assert.equal([...res.values()].filter((e) => e.state === BundleState.BUNDLE_STATE_READY).length, 2);
    await cleanup(undefined, [off]);
  });

  it('a host refuses a bundle signed by a key it does not trust, writing nothing', async () => {
    const rogue = generateSigningKey();
    await admin.call(admin.client.addSigningKey, { publicPem: rogue.publicPem, name: 'added-later' });
    const b = memBundle('rogue', '1.0.0', { 'bin/x': randomFile(1) }, rogue.privatePem);
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    const res = await prefetch(b, 'role=edge');
    for (const a of agents) {
      const ev = res.get(a.id)!;
      assert.equal(ev.state, BundleState.BUNDLE_STATE_FAILED);
      assert.match(ev.error, /does not trust/);
      assert.equal(a.loop.work.bundles.isHeld((await c.ctx.bundles.require('rogue', '1.0.0')).id), false);
    }
  });
});
