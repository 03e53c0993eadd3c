import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { PrefetchEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { BundleState } from '../../common/src/gen/ferry/v1/session.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, enrollAgent, enrollBehindLink, startController, waitFor, type TestAgent } from '../support/fixtures.js';
import type { LinkProxy } from '../support/link-proxy.js';

describe('ferry bundle prefetch when a host drops off mid-stage', function () {
  this.timeout(60_000);
  let c: Controller;
  let admin: Admin;
  let proxy: LinkProxy;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    const b = memBundle('edge', '1.0.0', { 'bin/edgecore': randomFile(2) }, key.privatePem);
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    agents.push(await enrollAgent(c, 'near', { labels: { role: 'edge' } }));
    // "far" reaches the controller through a link the test cuts.
    const behind = await enrollBehindLink(c, 'far', { role: 'edge' });
    proxy = behind.proxy;
    agents.push(behind.agent);
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'connected');
  });
  after(async () => { admin.close(); await proxy.close(); await cleanup(c, agents); });

  it('reports the host offline and ends, instead of waiting for it forever', async () => {
    const far = agents[1]!;
    // The link drops the moment the controller asks "far" to stage: its stage is under way, and no answer can come back.
    const session = c.ctx.sessions.get(far.id)!;
    const send = session.send.bind(session);
    session.send = (m) => (m.msg?.$case === 'bundleStage' ? proxy.cut() : send(m));
    const events: PrefetchEvent[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = admin.client.prefetch({ name: 'edge', version: '1.0.0', selector: 'role=edge', hosts: [], all: false });
      call.on('data', (ev: PrefetchEvent) => events.push(ev));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    const last = (host: string) => events.filter((e) => e.hostname === host).at(-1)!;
    assert.equal(last('near').state, BundleState.BUNDLE_STATE_READY);
    assert.equal(last('far').offline, true);
    assert.match(last('far').error, /disconnected while staging/);
    assert.ok(events.at(-1)!.final, 'the stream ends with its final event');
  });
});
