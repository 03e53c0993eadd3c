import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { parseJoinString } from '../../common/src/join-string.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { spreadIndex } from '../../agent/src/session/session-loop.js';
import { cleanup, enrollAgent, joinString, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';

/** Three controller replicas in this process on one fresh PostgreSQL database. */
export async function startReplicas(n: number, leaseTtl = '1s'): Promise<Controller[]> {
  const store = await (await sharedPostgres()).createDatabase();
  const out: Controller[] = [];
  // One after another: the first creates the CA every later one loads from the store.
  for (let i = 0; i < n; i++) out.push(await startController({ store, 'lease-ttl': leaseTtl }, tempDir(`ferry-replica${i}-`)));
  return out;
}

describe('several controller replicas on one PostgreSQL database', function () {
  this.timeout(90_000);
  let cs: Controller[] = [];
  const agents: TestAgent[] = [];
  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
    cs = await startReplicas(3);
  });
  after(async () => {
    await cleanup(undefined, agents);
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
  });
  const holding = (id: string) => cs.find((c) => c.state === 'running' && c.ctx.sessions.get(id));

  it('share one CA and one scheduler; join strings list every replica', async () => {
    assert.equal(new Set(cs.map((c) => c.pin)).size, 1, 'one CA pin');
    assert.equal(cs.filter((c) => c.leadership.isLeader()).length, 1, 'exactly one scheduler');
    assert.ok(cs[0]!.leadership.isLeader(), 'the first to start holds the lease');
    await waitFor(() => cs.every((c) => c.ctx.joinAddresses().length === 3), 10_000, 'every replica sees the others');
    const js = parseJoinString(await joinString(cs[2]!));
    assert.deepEqual(js.addresses[0], cs[2]!.address, 'the replica asked comes first');
    assert.deepEqual([...js.addresses].sort(), cs.map((c) => c.address).sort());
  });

  it('agents enrolled through any replica spread over all of them by their id, and every replica answers for the whole fleet', async () => {
    for (let i = 0; i < 6; i++) agents.push(await enrollAgent(cs[i % 3]!, `edge-${i}`));
    for (const a of agents) {
      const addrs = a.state.load().identity.addresses;
      const want = addrs[spreadIndex(a.id) % addrs.length];
      await waitFor(() => holding(a.id)?.address === want, 10_000, `${a.hostname} on ${want}`);
    }
    for (const c of cs) {
      const admin = Admin.connect({ adminSocket: c.config.adminSocket });
      try {
        const { agents: listed } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: false });
        assert.deepEqual(listed.map((x) => x.hostname).sort(), agents.map((a) => a.hostname).sort());
      } finally {
        admin.close();
      }
    }
  });

  it('when a replica goes, its agents move to the others; when the scheduler goes, another replica takes the lease', async () => {
    const leader = cs.find((c) => c.leadership.isLeader())!;
    const leaderAgents = agents.filter((a) => holding(a.id) === leader);
    await leader.stop(1_000);
    for (const a of agents) await waitFor(() => holding(a.id) !== undefined, 15_000, `${a.hostname} reconnected`);
    assert.ok(leaderAgents.every((a) => holding(a.id) !== leader));
    const rest = cs.filter((c) => c !== leader);
    await waitFor(() => rest.some((c) => c.leadership.isLeader()), 5_000, 'a new scheduler');
    assert.equal(rest.filter((c) => c.leadership.isLeader()).length, 1);
    const epochs = rest.map((c) => c.leadership.fence()?.epoch).filter((e) => e !== undefined);
    assert.ok(epochs[0]! >= 2, `epoch ${epochs[0]} after a takeover`);
  });
});
