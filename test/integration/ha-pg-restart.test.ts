import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Backoff } from '../../agent/src/session/backoff.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import type { RolloutSnapshot } from '../../common/src/gen/ferry/v1/rollouts.js';
import { silentLogger } from '../../common/src/log.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { ownPostgres, postgresMissing, type PgServer } from '../support/postgres.js';

const PLAN = (out: string) => `name: mark
steps:
  - id: one
    type: exec
    args: { argv: [sh, -c, "echo run >> ${out}/{{ facts.hostname }}.runs; echo hello from {{ facts.hostname }}"] }
`;

describe('PostgreSQL restarted under running replicas (a server of its own, durable)', function () {
  this.timeout(120_000);
  let server: (PgServer & { remove(): Promise<void> }) | undefined;
  const cs: Controller[] = [];
  const agents: TestAgent[] = [];
  const admins: Admin[] = [];
  const key = generateSigningKey();
  const out = tempDir('ferry-pg-restart-out-');
  const runs = (host: string): number => (existsSync(join(out, `${host}.runs`)) ? readFileSync(join(out, `${host}.runs`), 'utf8').trim().split('\n').length : 0);
  const holding = (id: string) => cs.find((c) => c.state === 'running' && c.ctx.sessions.get(id));
  const leaders = () => cs.filter((c) => c.leadership.isLeader());

  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
    server = await ownPostgres();
    const store = await server.createDatabase();
    for (let i = 0; i < 2; i++) cs.push(await startController({ store, 'lease-ttl': '1s' }, tempDir(`ferry-replica${i}-`)));
    await waitFor(() => cs.every((c) => c.ctx.joinAddresses().length === 2), 10_000, 'replicas see each other');
    for (const c of cs) admins.push(Admin.connect({ adminSocket: c.config.adminSocket }));
    await admins[0]!.call(admins[0]!.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    for (let i = 0; i < 4; i++) {
      const a = await enrollAgent(cs[i % 2]!, `r-${i}`, { start: false, labels: { role: 'edge' } });
      a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts(`r-${i}`), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
      a.loop.start();
      agents.push(a);
    }
    await waitFor(() => agents.every((a) => holding(a.id)), 10_000, 'every agent connected');
  });
  /** Lets the transaction held open across the crash finish, if a failure left it waiting. */
  let resume: () => void = () => undefined;
  /** Teardown steps each given a bounded time: a failed test must not leave a hook hanging. */
  const bounded = (p: Promise<unknown>, ms: number) => Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, ms).unref())]);
  after(async () => {
    resume();
    for (const a of admins) a.close();
    await bounded(cleanup(undefined, agents), 10_000);
    for (const c of cs) await bounded(c.stop(1_000), 10_000);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
    await bounded(server?.remove() ?? Promise.resolve(), 30_000);
    rmSync(out, { recursive: true, force: true });
  });

  it('the replicas ride out a crash and restart of the server: nothing committed is lost, sessions stay, the lease and a rollout work after', async () => {
    // Committed before the crash: a plan, a token, their audit entries.
    await admins[1]!.call(admins[1]!.client.pushPlan, { signed: signPlan(PLAN(out), 'mark.yaml', key.privatePem) });
    const token = await admins[0]!.call(admins[0]!.client.createToken, { ttlMs: 600_000, maxUses: 3, labels: [] });
    const auditBefore = (await admins[0]!.call(admins[0]!.client.listAudit, { limit: 1000 })).entries.length;
    const epochBefore = leaders()[0]!.leadership.fence()!.epoch;

    // A transaction open between two statements when the server goes: it fails UNAVAILABLE, the process lives on.
    let entered!: () => void;
    const inside = new Promise<void>((r) => { entered = r; });
    const go = new Promise<void>((r) => { resume = r; });
    const open = cs[0]!.ctx.db.tx(async (t) => {
      await t.get('SELECT 1 AS one');
      entered();
      await go;
      await t.run('UPDATE leases SET owner = owner WHERE name = ?', ['none']);
    });
    await inside;

    server!.stop('immediate');
    // Store calls fail clearly while it is away, and the scheduler stops its singleton work within the lease time.
    await assert.rejects(admins[1]!.call(admins[1]!.client.createToken, { ttlMs: 600_000, maxUses: 1, labels: [] }), (err: unknown) => {
      assert.ok(err instanceof FerryError && err.code === ErrorCode.Unavailable, String(err));
      assert.match(err.message, /the store \(PostgreSQL at .*\) is unreachable/);
      return true;
    });
    await waitFor(() => leaders().length === 0, 10_000, 'no replica acting as scheduler without the database');
    assert.ok(agents.every((a) => holding(a.id)), 'agent sessions stay up while the database is away');
    resume();
    await assert.rejects(open, (err: unknown) => err instanceof FerryError && err.code === ErrorCode.Unavailable);

    server!.start();
    await waitFor(() => leaders().length === 1, 15_000, 'one scheduler again');
    assert.ok(leaders()[0]!.leadership.fence()!.epoch >= epochBefore);

    // Nothing committed before the crash is lost.
    for (const admin of admins) {
      const { tokens } = await admin.call(admin.client.listTokens, {});
      assert.ok(tokens.some((t) => t.id === token.token!.id), 'the token');
      const { plans } = await admin.call(admin.client.listPlans, {});
      assert.deepEqual(plans.map((p) => p.name), ['mark']);
      assert.ok((await admin.call(admin.client.listAudit, { limit: 1000 })).entries.length >= auditBefore);
    }
    // Writes work again on every replica, and the agents' sessions are where the store says.
    for (const admin of admins) await admin.call(admin.client.createToken, { ttlMs: 600_000, maxUses: 1, labels: [] });
    await waitFor(async () => {
      const s = await cs[0]!.ctx.status();
      return s.replicas.length === 2 && s.replicas.reduce((n, r) => n + r.sessions, 0) === agents.length;
    }, 15_000, 'every session recorded after the restart');

    // A rollout over hosts on both replicas: the lease's fenced writes and the job mailbox work after the restart.
    const leader = cs.indexOf(leaders()[0]!);
    const ro = new Rollouts(admins[leader]!);
    const info = await ro.call(ro.client.create, { spec: 'plan: mark\ntargets: { selector: role=edge }\nstrategy:\n  waves: [1, "100%"]\n', file: 'r.yaml' });
    let snap: RolloutSnapshot | undefined;
    await waitFor(async () => {
      snap = await ro.call(ro.client.get, { id: info.id, afterSeq: 0 });
      return ['succeeded', 'failed', 'aborted'].includes(snap.info!.state);
    }, 60_000, 'the rollout to finish');
    assert.equal(snap!.info!.state, 'succeeded', JSON.stringify(snap!.hosts.map((h) => [h.hostname, h.state, h.message])));
    for (const a of agents) assert.equal(runs(a.hostname), 1, `${a.hostname} ran once`);
  });
});
