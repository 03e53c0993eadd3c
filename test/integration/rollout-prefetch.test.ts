import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { RolloutSnapshot } from '../../common/src/gen/ferry/v1/rollouts.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, enrollAgent, enrollBehindLink, startController, waitFor, type TestAgent } from '../support/fixtures.js';
import type { LinkProxy } from '../support/link-proxy.js';

const PLAN = `name: staged
bundles:
  edge: edge:1.0.0
steps:
  - id: one
    type: exec
    args: { argv: ["true"] }
`;

describe('rollout prefetch on in-process agents', function () {
  this.timeout(60_000);
  let c: Controller;
  let admin: Admin;
  let ro: Rollouts;
  let proxy: LinkProxy;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    ro = new Rollouts(admin);
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    const b = memBundle('edge', '1.0.0', { 'bin/edgecore': randomFile(2) }, key.privatePem);
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    await admin.call(admin.client.pushPlan, { signed: signPlan(PLAN, 'staged.yaml', key.privatePem) });
    agents.push(await enrollAgent(c, 'near', { labels: { role: 'edge' } }));
    // "far" reaches the controller through a link the test cuts.
    const behind = await enrollBehindLink(c, 'far', { role: 'edge' });
    proxy = behind.proxy;
    agents.push(behind.agent);
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'connected');
  });
  after(async () => { admin.close(); await proxy.close(); await cleanup(c, agents); });

  it('a host that drops off mid-stage does not hold the rollout in prefetching: it is offline, and offline: skip applies after offlineTimeout', async () => {
    const far = agents[1]!;
    // The link drops the moment the controller asks "far" to stage the bundle: its stage is under way, and no answer can come back.
    const session = c.ctx.sessions.get(far.id)!;
    const send = session.send.bind(session);
    session.send = (m) => (m.msg?.$case === 'bundleStage' ? proxy.cut() : send(m));
    const { id } = await ro.call(ro.client.create, {
      spec: 'plan: staged\ntargets: { selector: role=edge }\nstrategy: { prefetch: true, offlineTimeout: 1s, offline: skip }\n', file: 'staged.yaml',
    });
    let snap: RolloutSnapshot | undefined;
    await waitFor(async () => ['succeeded', 'failed', 'aborted'].includes((snap = await ro.call(ro.client.get, { id, afterSeq: 0 })).info!.state), 20_000, 'the rollout to finish');
    assert.equal(snap!.info!.state, 'succeeded', JSON.stringify(snap!.hosts.map((h) => [h.hostname, h.state, h.message])));
    const host = (n: string) => snap!.hosts.find((h) => h.hostname === n)!;
    assert.equal(host('near').state, 'succeeded');
    assert.equal(host('far').state, 'skipped');
    assert.match(host('far').message, /^offline for \d/);
    const farEvents = (await c.ctx.rollouts.store.events(id)).filter((e) => e.hostname === 'far');
    assert.deepEqual(farEvents.map((e) => e.state), ['pending', 'skipped']);
    assert.match(farEvents[0]!.message, /^offline during prefetch/);
  });
});
