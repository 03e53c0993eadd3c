import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { startController, tempDir } from '../support/fixtures.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';

const SIGNED = { plan: 'name: p\nsteps: []\n', signature: '', keyId: 'k', file: 'p.yaml' };

describe('bundle rm on one replica while a job started on another still needs the bundle', function () {
  this.timeout(60_000);
  const cs: Controller[] = [];
  const admins: Admin[] = [];
  const key = generateSigningKey();

  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
    const store = await (await sharedPostgres()).createDatabase();
    for (let i = 0; i < 2; i++) {
      cs.push(await startController({ store, 'lease-ttl': '1s' }, tempDir(`ferry-replica${i}-`)));
      admins.push(Admin.connect({ adminSocket: cs[i]!.config.adminSocket }));
    }
    await admins[0]!.call(admins[0]!.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
  });
  after(async () => {
    for (const a of admins) a.close();
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
  });

  it('is refused (naming the job) until the job has ended, and then removes the bundle and its chunks; --force removes it at once', async () => {
    const [a, b] = cs as [Controller, Controller];
    const [adminA, adminB] = admins as [Admin, Admin];
    const push = async (name: string) => {
      const m = memBundle(name, '1.0.0', { 'bin/tool': randomFile(2) }, key.privatePem);
      await pushBundle(adminA, m.signed, byDigest(async (d) => m.chunks.get(d)!), { progress: false });
      return { m, stored: await a.ctx.bundles.require(name, '1.0.0') };
    };
    const { m, stored } = await push('inuse');
    // A plan job started on replica A that stages the bundle on a host not connected anywhere yet: its start waits in the store.
    const run = 'j-bundle-rm-test';
    await a.ctx.jobs.createJob(run, { planId: 'p', signed: SIGNED, params: {}, bundles: [{ as: 'tool', bundleId: stored.id, signed: stored.signed }], check: false, createdBy: 'test' });
    const hostJob = `${run}-ag-away`;
    await a.ctx.jobs.startHost(run, hostJob, { signed: SIGNED, params: {}, bundles: [{ as: 'tool', bundleId: stored.id, signed: stored.signed }], check: false },
      { agentId: 'ag-away', hostname: 'away' }, {});

    await assert.rejects(adminB.call(adminB.client.removeBundle, { name: 'inuse', version: '1.0.0', force: false }),
      (e: FerryError) => e.code === ErrorCode.InvalidArgument && e.message.includes(`job ${run} (1 host under way)`) && /--force/.test(e.hint ?? ''));
    assert.ok(await b.ctx.bundles.get('inuse', '1.0.0'), 'the bundle is still there');
    for (const d of m.chunks.keys()) assert.ok(existsSync(b.ctx.bundles.chunks.pathOf(d)), 'its chunks are still there');

    await a.ctx.jobs.sequencer.end(hostJob, 'cancelled', 'test over');
    const r = await adminB.call(adminB.client.removeBundle, { name: 'inuse', version: '1.0.0', force: false });
    assert.equal(r.removed!.name, 'inuse');
    assert.equal(await a.ctx.bundles.get('inuse', '1.0.0'), undefined, 'gone for every replica');

    // --force: removed although a job still names it (the operator accepts that its hosts fail).
    const other = await push('forced');
    const run2 = 'j-bundle-rm-force';
    await a.ctx.jobs.createJob(run2, { planId: 'p', signed: SIGNED, params: {}, bundles: [{ as: 'tool', bundleId: other.stored.id, signed: other.stored.signed }], check: false, createdBy: 'test' });
    await a.ctx.jobs.startHost(run2, `${run2}-ag-away`, { signed: SIGNED, params: {}, bundles: [{ as: 'tool', bundleId: other.stored.id, signed: other.stored.signed }], check: false },
      { agentId: 'ag-away', hostname: 'away' }, {});
    await adminB.call(adminB.client.removeBundle, { name: 'forced', version: '1.0.0', force: true });
    assert.equal(await a.ctx.bundles.get('forced', '1.0.0'), undefined);
    await a.ctx.jobs.sequencer.end(`${run2}-ag-away`, 'cancelled', 'test over');
  });
});
