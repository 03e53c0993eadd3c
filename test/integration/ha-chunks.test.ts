import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import { BundleState } from '../../common/src/gen/ferry/v1/session.js';
import { formatJoinString } from '../../common/src/join-string.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { CHUNK_MARKER } from '../../controller/src/ha/shared-chunks.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, enrollAgent, sharedChunkDir, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';

describe('replicas on one PostgreSQL store serve one shared chunk directory', function () {
  this.timeout(90_000);
  let store: string;
  const cs: Controller[] = [];
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const files = { 'bin/edgecore': randomFile(3), 'images/app.tar': randomFile(5), 'etc/a.conf': Buffer.from('a = 1\n') };
  const bundle = memBundle('edge', '1.0.0', files, key.privatePem);

  /** An agent whose join string names only `c`: its session is on that replica. */
  async function agentOn(c: Controller, hostname: string): Promise<TestAgent> {
    const { token } = await c.ctx.tokens.create({ ttlMs: 600_000, maxUses: 1, labels: {} });
    const a = await enrollAgent(c, hostname, { js: formatJoinString({ addresses: [c.address], token, caPin: c.pin }) });
    agents.push(a);
    await waitFor(() => c.ctx.sessions.get(a.id) !== undefined, 10_000, `${hostname} on its replica`);
    return a;
  }

  /** Stages the bundle on `a` through replica `c` and checks every file byte for byte. */
  async function stageThrough(c: Controller, a: TestAgent): Promise<void> {
    const stored = await c.ctx.bundles.require('edge', '1.0.0');
    let last: { state: number; error: string } | undefined;
    await c.ctx.prefetch.run(stored, [{ agentId: a.id, hostname: a.hostname }], (ev) => { last = ev; }, AbortSignal.timeout(30_000));
    assert.equal(last?.state, BundleState.BUNDLE_STATE_READY, last?.error);
    const dir = a.loop.work.bundles.filesDir(stored.id);
    for (const [p, data] of Object.entries(files)) assert.ok(readFileSync(join(dir, p)).equals(data), `${a.hostname}: ${p}`);
  }

  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
    store = await (await sharedPostgres()).createDatabase();
    for (let i = 0; i < 2; i++) cs.push(await startController({ store, 'lease-ttl': '1s' }, tempDir(`ferry-replica${i}-`)));
  });
  after(async () => {
    await cleanup(undefined, agents);
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
  });

  it('a bundle pushed through replica A is staged at once by an agent on replica B', async () => {
    const [a, b] = cs as [Controller, Controller];
    assert.equal(a.config.chunkDir, b.config.chunkDir);
    const admin = Admin.connect({ adminSocket: a.config.adminSocket });
    try {
      await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
      await pushBundle(admin, bundle.signed, byDigest(async (d) => bundle.chunks.get(d)!), { progress: false });
    } finally {
      admin.close();
    }
    await stageThrough(b, await agentOn(b, 'edge-b'));
  });

  it('replica A\'s data directory lost: every committed chunk is still served, also by a replica started afterwards', async () => {
    const a = cs[0]!;
    await a.stop(1_000);
    rmSync(a.config.dataDir, { recursive: true, force: true });
    assert.ok(!existsSync(a.config.dataDir));
    await stageThrough(cs[1]!, await agentOn(cs[1]!, 'edge-b2'));
    const c = await startController({ store, 'lease-ttl': '1s' }, tempDir('ferry-replica2-'));
    cs.push(c);
    await stageThrough(c, await agentOn(c, 'edge-c'));
  });

  it('refuses a replica whose chunk directory is not the shared one (its own, or another store\'s), before it serves', async () => {
    const own = tempDir('ferry-own-chunks-');
    const data = tempDir('ferry-replica-refused-');
    try {
      await assert.rejects(startController({ store, chunks: own }, data), (err: unknown) => {
        assert.ok(err instanceof FerryError && err.code === ErrorCode.Config, String(err));
        assert.match(err.message, new RegExp(`chunk directory ${own} is not the one the other replicas on this store share`));
        assert.match(err.hint ?? '', /--chunks on the same shared filesystem/);
        return true;
      });
      writeFileSync(join(own, CHUNK_MARKER), 'feedfacefeedfacefeedfacefeedface\n');
      await assert.rejects(startController({ store, chunks: own }, data), /belongs to another chunk store \(feedfacefeed…\)/);
      // Nothing left held: the same data directory starts once pointed at the shared chunks.
      const ok = await startController({ store, chunks: sharedChunkDir(store), 'lease-ttl': '1s' }, data);
      cs.push(ok);
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });
});
