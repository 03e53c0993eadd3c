import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { RolloutSnapshot } from '../../common/src/gen/ferry/v1/rollouts.js';
import { silentLogger } from '../../common/src/log.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';

const PLAN = (out: string) => `name: tiny
steps:
  - id: one
    type: exec
    args: { argv: [sh, -c, "echo run >> ${out}/{{ facts.hostname }}.runs; echo hello from {{ facts.hostname }}; echo second line"] }
  - id: two
    type: exec
    args: { argv: [sleep, "0.05"] }
`;

describe('a rollout across three replicas (in-process, one PostgreSQL database)', function () {
  this.timeout(120_000);
  const cs: Controller[] = [];
  const agents: TestAgent[] = [];
  const admins: Admin[] = [];
  const key = generateSigningKey();
  const out = tempDir('ferry-ha-out-');
  const runs = (host: string): number => (existsSync(join(out, `${host}.runs`)) ? readFileSync(join(out, `${host}.runs`), 'utf8').trim().split('\n').length : 0);
  const holding = (id: string) => cs.find((c) => c.state === 'running' && c.ctx.sessions.get(id));

  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
    const store = await (await sharedPostgres()).createDatabase();
    for (let i = 0; i < 3; i++) cs.push(await startController({ store, 'lease-ttl': '1s' }, tempDir(`ferry-replica${i}-`)));
    await waitFor(() => cs.every((c) => c.ctx.joinAddresses().length === 3), 10_000, 'replicas see each other');
    for (const c of cs) admins.push(Admin.connect({ adminSocket: c.config.adminSocket }));
    await admins[1]!.call(admins[1]!.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    await admins[2]!.call(admins[2]!.client.pushPlan, { signed: signPlan(PLAN(out), 'tiny.yaml', key.privatePem) });
    for (let i = 0; i < 9; i++) {
      const a = await enrollAgent(cs[i % 3]!, `h-${i}`, { start: false, labels: { role: 'edge' } });
      a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts(`h-${i}`), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
      a.loop.start();
      agents.push(a);
    }
    await waitFor(() => agents.every((a) => holding(a.id)), 10_000, 'every agent connected');
  });
  after(async () => {
    for (const a of admins) a.close();
    await cleanup(undefined, agents);
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });

  it('hosts connected to other replicas than the scheduler get their starts, their results drive the waves, their output is in the store for every replica', async () => {
    const leader = cs.findIndex((c) => c.leadership.isLeader());
    assert.ok(agents.some((a) => holding(a.id) !== cs[leader]), 'some hosts are on other replicas');
    const ro = new Rollouts(admins[leader]!);
    const info = await ro.call(ro.client.create, { spec: 'plan: tiny\ntargets: { selector: role=edge }\nstrategy:\n  waves: [1, "50%", "100%"]\n', file: 'r.yaml' });
    let snap: RolloutSnapshot | undefined;
    await waitFor(async () => {
      snap = await ro.call(ro.client.get, { id: info.id, afterSeq: 0 });
      return ['succeeded', 'failed', 'aborted'].includes(snap.info!.state);
    }, 60_000, 'the rollout to finish');
    assert.equal(snap!.info!.state, 'succeeded', JSON.stringify(snap!.hosts.map((h) => [h.hostname, h.state, h.message])));
    for (let i = 0; i < 9; i++) assert.equal(runs(`h-${i}`), 1, `h-${i} ran once`);
    for (const h of snap!.hosts) for (const p of snap!.hosts.filter((x) => x.wave < h.wave)) assert.ok(p.finishedAtMs <= h.startedAtMs, `${p.hostname} before ${h.hostname}`);
    // Any replica reads the rollout and every host's output, in order, once.
    const jobId = (await cs[leader]!.ctx.rollouts.store.load(info.id))!.jobId;
    for (const [i, admin] of admins.entries()) {
      const other = new Rollouts(admin);
      assert.equal((await other.call(other.client.get, { id: info.id, afterSeq: 0 })).info!.state, 'succeeded', `replica ${i} reads the rollout`);
      const { lines } = await admin.call(admin.client.jobLogs, { id: jobId, host: '' });
      for (let h = 0; h < 9; h++) {
        const mine = lines.filter((l) => l.hostname === `h-${h}` && l.kind === 'output').map((l) => l.text);
        assert.deepEqual(mine, [`hello from h-${h}`, 'second line'], `h-${h} output on replica ${i}`);
      }
    }
  });
});
