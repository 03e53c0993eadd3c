import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { JobEvent } from '../../common/src/gen/ferry/v1/admin.js';
import type { RolloutSnapshot, RolloutUpdate } from '../../common/src/gen/ferry/v1/rollouts.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';
import { enrollOverReplicas } from '../support/replicas.js';

const PLAN = (out: string) => `name: tiny
steps:
  - id: one
    type: exec
    args: { argv: [sh, -c, "echo run >> ${out}/{{ facts.hostname }}.runs; echo hello from {{ facts.hostname }}; echo second line"] }
  - id: two
    type: exec
    args: { argv: [sleep, "0.05"] }
`;

const HELLO = `name: hello
steps:
  - id: say
    type: exec
    args: { argv: [sh, -c, "echo one {{ facts.hostname }}; echo two {{ facts.hostname }}; echo three {{ facts.hostname }}"] }
`;
const SLOW = `name: slow
steps:
  - id: nap
    type: exec
    args: { argv: [sh, -c, "echo napping {{ facts.hostname }}; sleep 60; echo woke"] }
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
    await admins[0]!.call(admins[0]!.client.pushPlan, { signed: signPlan(HELLO, 'hello.yaml', key.privatePem) });
    await admins[0]!.call(admins[0]!.client.pushPlan, { signed: signPlan(SLOW, 'slow.yaml', key.privatePem) });
    await enrollOverReplicas(cs, agents, { prefix: 'h', count: 9, labels: { role: 'edge' } });
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

  it('rollout changes through a replica that is not the scheduler (create, pause, resume, abort) are applied by the scheduler and audited with who asked; a refusal comes back as it is', async () => {
    const leader = cs.findIndex((c) => c.leadership.isLeader());
    const other = (leader + 1) % 3;
    assert.ok(cs[other]!.ctx.rollouts.isStopped(), 'the replica asked does not run the scheduler');
    const ro = new Rollouts(admins[other]!);
    const info = await ro.call(ro.client.create, { spec: 'plan: slow\ntargets: { selector: role=edge }\nstrategy: { waves: [1, "100%"] }\n', file: 'r.yaml' });
    assert.ok(cs[leader]!.ctx.rollouts.get(info.id), 'the scheduler drives the rollout created elsewhere');
    const paused = await ro.call(ro.client.pause, { id: info.id, reason: 'checking', force: false, hosts: [] });
    assert.deepEqual([paused.paused, paused.pauseReason], [true, 'checking'], 'the answer shows the change applied');
    assert.equal(cs[leader]!.ctx.rollouts.get(info.id)?.model.paused, true);
    const resumed = await ro.call(ro.client.resume, { id: info.id, reason: '', force: false, hosts: [] });
    assert.equal(resumed.paused, false);
    const aborted = await ro.call(ro.client.abort, { id: info.id, reason: 'enough', force: false, hosts: [] });
    assert.ok(['aborting', 'aborted'].includes(aborted.state), aborted.state);
    await waitFor(async () => (await ro.call(ro.client.get, { id: info.id, afterSeq: 0 })).info!.state === 'aborted', 20_000, 'the abort to finish');
    await assert.rejects(ro.call(ro.client.approve, { id: info.id, reason: '', force: false, hosts: [] }), (err: Error & { code?: string }) => {
      assert.match(err.message, /is aborted; there is nothing to approved/);
      return true;
    });
    const audit = (await cs[leader]!.ctx.audit.list(50)).filter((e) => e.subject === info.id).map((e) => [e.actor, e.action]).reverse();
    assert.deepEqual(audit, [['local', 'rollout.create'], ['local', 'rollout.paused'], ['local', 'rollout.resumed'], ['local', 'rollout.abort']]);
    const left = await cs[leader]!.ctx.db.all<{ id: string }>('SELECT id FROM rollout_commands');
    assert.deepEqual(left, [], 'each command row removed once its caller had the answer');
  });

  /** Runs a plan through replica `i` on every host; `onEvent` sees each event; resolves with all of them when the call ends. */
  function runOn(i: number, plan: string, onEvent: (ev: JobEvent, cancel: () => void) => void = () => undefined): Promise<JobEvent[]> {
    const evs: JobEvent[] = [];
    return new Promise((resolve, reject) => {
      const s = admins[i]!.client.runPlan({ plan, params: {}, selector: 'role=edge', hosts: [], all: false, check: false, concurrency: 0, timeoutMs: 0 });
      s.on('data', (ev: JobEvent) => { evs.push(ev); onEvent(ev, () => s.cancel()); });
      s.on('error', (e: Error & { code?: number }) => (e.code === 1 ? resolve(evs) : reject(e)));
      s.on('end', () => resolve(evs));
    });
  }

  it('a plan run through any replica reaches every host wherever its session is, and each host\'s output reaches the caller in order, once', async () => {
    const asked = cs.findIndex((c) => !c.leadership.isLeader());
    assert.ok(agents.some((a) => holding(a.id) !== cs[asked]), 'some hosts are on other replicas');
    const evs = await runOn(asked, 'hello');
    const summary = evs.find((e) => e.event?.$case === 'summary')?.event;
    assert.ok(summary?.$case === 'summary');
    assert.deepEqual({ matched: summary.value.matched, succeeded: summary.value.succeeded, offline: summary.value.offline }, { matched: 9, succeeded: 9, offline: 0 });
    for (let h = 0; h < 9; h++) {
      const lines = evs.filter((e) => e.hostname === `h-${h}` && e.event?.$case === 'line').map((e) => (e.event as { value: { line: string } }).value.line);
      assert.deepEqual(lines, [`one h-${h}`, `two h-${h}`, `three h-${h}`], `h-${h}'s lines, once, in order`);
      const results = evs.filter((e) => e.hostname === `h-${h}` && e.event?.$case === 'result');
      assert.equal(results.length, 1, `h-${h}: one result`);
    }
  });

  it('leaving a run started on one replica cancels it on hosts connected to the others', async () => {
    const asked = cs.findIndex((c) => !c.leadership.isLeader());
    const napping = new Set<string>();
    let jobId = '';
    await runOn(asked, 'slow', (ev, cancel) => {
      if (ev.event?.$case === 'started') jobId = ev.event.value.slice(0, -(ev.agentId.length + 1));
      if (ev.event?.$case === 'line' && ev.event.value.line.startsWith('napping')) napping.add(ev.hostname);
      if (napping.size === 9) cancel();
    });
    assert.equal(napping.size, 9, 'every host started its step before the caller left');
    let hosts: Array<{ hostname: string; state: string }> = [];
    // Without the cancel reaching them, the hosts nap for 60 s.
    await waitFor(async () => {
      hosts = (await admins[asked]!.call(admins[asked]!.client.getJob, { id: jobId })).hosts;
      return hosts.length === 9 && hosts.every((h) => h.state === 'cancelled');
    }, 20_000, () => `every host job cancelled: ${JSON.stringify(hosts.map((h) => [h.hostname, h.state]))}`);
  });

  it('a rollout watched through a replica that is not the scheduler streams its events live, and its abort cancels hosts on every replica', async () => {
    const leader = cs.findIndex((c) => c.leadership.isLeader());
    const other = (leader + 1) % 3;
    const ro = new Rollouts(admins[leader]!);
    const info = await ro.call(ro.client.create, { spec: 'plan: slow\ntargets: { selector: role=edge }\nstrategy: { waves: ["100%"] }\n', file: 'r.yaml' });
    const watcher = new Rollouts(admins[other]!);
    const events: Array<{ seq: number; state: string; hostname: string }> = [];
    let last: RolloutSnapshot | undefined;
    const watched = new Promise<void>((resolve, reject) => {
      const s = watcher.client.watch({ id: info.id, afterSeq: 0 });
      s.on('data', (u: RolloutUpdate) => {
        if (u.update?.$case === 'event') events.push({ seq: u.update.value.seq, state: u.update.value.state, hostname: u.update.value.hostname });
        if (u.update?.$case === 'snapshot') last = u.update.value;
      });
      s.on('error', reject);
      s.on('end', () => resolve());
    });
    await waitFor(() => events.filter((e) => e.state === 'running' && e.hostname).length === 9, 20_000, () => `9 hosts running, seen on replica ${other}: ${JSON.stringify(events)}`);
    await ro.call(ro.client.abort, { id: info.id, reason: 'test', force: false, hosts: [] });
    await watched;
    assert.equal(last?.info?.state, 'aborted', JSON.stringify(last?.hosts.map((h) => [h.hostname, h.state, h.message])));
    assert.deepEqual(last!.hosts.map((h) => h.state), Array(9).fill('cancelled'), 'every host\'s nap was cancelled, wherever its session');
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'each event once, in order');
  });
});
