// `ferry bundle prefetch` through one replica for hosts whose sessions are on
// another: the stage goes through the store (that replica's mailbox sends it),
// progress comes back through the store, and a host that goes away mid-stage
// is reported offline instead of waited for.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { PrefetchEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { BundleState } from '../../common/src/gen/ferry/v1/session.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';
import { enrollOverReplicas, holdingReplica } from '../support/replicas.js';

describe('ferry bundle prefetch across replicas (one PostgreSQL database)', function () {
  this.timeout(120_000);
  const cs: Controller[] = [];
  const agents: TestAgent[] = [];
  const admins: Admin[] = [];
  const key = generateSigningKey();
  const holding = (id: string) => holdingReplica(cs, id);

  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
    const store = await (await sharedPostgres()).createDatabase();
    for (let i = 0; i < 2; i++) cs.push(await startController({ store, 'lease-ttl': '1s' }, tempDir(`ferry-replica${i}-`)));
    await waitFor(() => cs.every((c) => c.ctx.joinAddresses().length === 2), 10_000, 'replicas see each other');
    for (const c of cs) admins.push(Admin.connect({ adminSocket: c.config.adminSocket }));
    await admins[0]!.call(admins[0]!.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    for (const [v, mib] of [['1.0.0', 3], ['2.0.0', 2]] as const) {
      const b = memBundle('edge', v, { 'bin/edgecore': randomFile(mib) }, key.privatePem);
      await pushBundle(admins[0]!, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    }
    await enrollOverReplicas(cs, agents, { prefix: 'p', count: 4, labels: { role: 'edge' }, eachReplica: 2 });
  });
  after(async () => {
    for (const a of admins) a.close();
    await cleanup(undefined, agents);
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
  });

  const prefetch = (admin: Admin, version: string) => new Promise<PrefetchEvent[]>((resolve, reject) => {
    const events: PrefetchEvent[] = [];
    const call = admin.client.prefetch({ name: 'edge', version, selector: 'role=edge', hosts: [], all: false });
    call.on('data', (ev: PrefetchEvent) => events.push(ev));
    call.on('error', reject);
    call.on('end', () => resolve(events));
  });

  it('through replica A stages the bundle on hosts connected to replica B too, with their progress', async () => {
    const onB = agents.filter((a) => holding(a.id) === 1);
    assert.ok(onB.length > 0 && agents.some((a) => holding(a.id) === 0), 'hosts on both replicas');
    const events = await prefetch(admins[0]!, '1.0.0');
    const last = (host: string) => events.filter((e) => e.hostname === host).at(-1)!;
    for (const a of agents) {
      assert.equal(last(a.hostname).state, BundleState.BUNDLE_STATE_READY, `${a.hostname}: ${JSON.stringify(last(a.hostname))}`);
      assert.equal(last(a.hostname).offline, false);
    }
    // Held for real on the hosts of B: B's own `agents ls` source (the store) says so.
    const held = await cs[1]!.ctx.prefetch.heldNames();
    for (const a of onB) assert.deepEqual(held.get(a.id), ['edge:1.0.0']);
    assert.ok(events.at(-1)!.final, 'the stream ends with its final event');
  });

  it('reports a host on replica B that goes away mid-stage offline, and ends', async () => {
    const gone = agents.find((a) => holding(a.id) === 1)!;
    // The host stops the moment replica B hands it the stage: no progress will ever come.
    const session = cs[1]!.ctx.sessions.get(gone.id)!;
    const send = session.send.bind(session);
    session.send = (m) => {
      if (m.msg?.$case === 'bundleStage') { void gone.loop.stop(); return; }
      send(m);
    };
    const events = await prefetch(admins[0]!, '2.0.0');
    const last = (host: string) => events.filter((e) => e.hostname === host).at(-1)!;
    assert.equal(last(gone.hostname).offline, true, JSON.stringify(last(gone.hostname)));
    assert.match(last(gone.hostname).error, /disconnected while staging/);
    for (const a of agents.filter((x) => x !== gone)) assert.equal(last(a.hostname).state, BundleState.BUNDLE_STATE_READY, a.hostname);
  });
});
