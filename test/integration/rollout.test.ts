import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import type { RolloutSnapshot, RolloutUpdate } from '../../common/src/gen/ferry/v1/rollouts.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { silentLogger } from '../../common/src/log.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { LinkProxy } from '../support/link-proxy.js';
import { repoRoot, run } from '../support/proc.js';
import { describeStores } from '../support/stores.js';

/** Each host appends its name to OUT/<hostname>.runs once per run; hosts labelled fail=yes fail at step "boom". */
const PLAN = (out: string) => `name: tiny
params:
  pause: "0.05"
steps:
  - id: one
    type: exec
    args: { argv: [sh, -c, "echo run >> ${out}/{{ facts.hostname }}.runs; echo hello from {{ facts.hostname }}"] }
  - id: boom
    type: exec
    args: { argv: [sh, -c, "echo boom on {{ facts.hostname }} >&2; exit 3"] }
    when: { labels: { fail: "yes" } }
  - id: two
    type: exec
    args: { argv: [sleep, "{{ params.pause }}"] }
`;

describeStores('rollouts on in-process agents (small fleet)', function (store) {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  let ro: Rollouts;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const out = tempDir('ferry-rollout-out-');

  async function addAgent(name: string, labels: Record<string, string>): Promise<TestAgent> {
    const a = await enrollAgent(c, name, { start: false, labels });
    const root = tempDir('ferry-root-');
    a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts(name), log: silentLogger(), backoff: new Backoff(50, 500), root });
    a.loop.start();
    agents.push(a);
    return a;
  }

  const runs = (host: string): number => (existsSync(join(out, `${host}.runs`)) ? readFileSync(join(out, `${host}.runs`), 'utf8').trim().split('\n').length : 0);

  async function finished(id: string, ms = 60_000): Promise<RolloutSnapshot> {
    let snap: RolloutSnapshot | undefined;
    await waitFor(async () => {
      snap = await ro.call(ro.client.get, { id, afterSeq: 0 });
      return ['succeeded', 'failed', 'aborted'].includes(snap.info!.state);
    }, ms, `rollout ${id} to finish`);
    return snap!;
  }

  before(async () => {
    c = await startController(await store.flags());
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    ro = new Rollouts(admin);
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    await admin.call(admin.client.pushPlan, { signed: signPlan(PLAN(out), 'tiny.yaml', key.privatePem) });
    for (let i = 0; i < 6; i++) await addAgent(`s-${i}`, { role: 'edge', ...(i === 4 ? { fail: 'yes' } : {}) });
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'connected');
  });
  after(async () => { admin.close(); await cleanup(c, agents); rmSync(out, { recursive: true, force: true }); });

  it('runs waves in order, streams a watch, and ends failed with one failed host within budget', async () => {
    const spec = `plan: tiny
targets: { selector: role=edge, hosts: [s-5] }
strategy:
  waves: [1, "50%", "100%"]
  errorBudget: 1
`;
    const info = await ro.call(ro.client.create, { spec, file: 'r.yaml' });
    assert.equal(info.hosts, 6);
    const updates: RolloutUpdate[] = [];
    await new Promise<void>((resolve, reject) => {
      const w = ro.client.watch({ id: info.id, afterSeq: 0 });
      w.on('data', (u: RolloutUpdate) => updates.push(u));
      w.on('error', (e) => reject(fromServiceError(e)));
      w.on('end', () => resolve());
    });
    const snap = await finished(info.id);
    assert.equal(snap.info!.state, 'failed', JSON.stringify(snap.hosts.map((h) => [h.hostname, h.state, h.message])));
    assert.deepEqual(snap.waves.map((w) => w.size), [1, 2, 3]);
    assert.equal(snap.hosts[0]!.hostname, 's-5', 'explicit hosts come first: the canary');
    const failed = snap.hosts.filter((h) => h.state === 'failed');
    assert.deepEqual(failed.map((h) => h.hostname), ['s-4']);
    assert.equal(failed[0]!.stepId, 'boom');
    assert.match(failed[0]!.message, /step boom/);
    assert.ok(failed[0]!.lastLines.some((l) => l.includes('boom on s-4')), JSON.stringify(failed[0]));
    for (let i = 0; i < 6; i++) assert.equal(runs(`s-${i}`), 1, `s-${i} ran once`);
    // Waves started in order: every host of wave n started after every host of wave n-1 finished.
    for (const h of snap.hosts) {
      for (const p of snap.hosts.filter((x) => x.wave < h.wave)) assert.ok(p.finishedAtMs <= h.startedAtMs, `${p.hostname} before ${h.hostname}`);
    }
    const events = updates.filter((u) => u.update?.$case === 'event').map((u) => (u.update as { value: { kind: string } }).value.kind);
    assert.ok(events.includes('wave-started') && events.includes('finished'), events.join(','));
    assert.equal(updates.at(-1)!.update?.$case, 'snapshot');

    const logs = await ro.call(ro.client.logs, { id: info.id, host: 's-4', attempt: 0 });
    assert.ok(logs.lines.some((l) => l.stderr && l.text === 'boom on s-4'), JSON.stringify(logs.lines));
    assert.ok(logs.lines.some((l) => l.kind === 'result' && /failed/.test(l.text)));
  });

  it('retries a failed host as a new attempt; it runs once more', async () => {
    const { rollouts } = await ro.call(ro.client.list, { limit: 1 });
    const id = rollouts[0]!.id;
    const r = await ro.call(ro.client.retry, { id, reason: '', hosts: ['s-4'], force: false });
    assert.equal(r.state, 'running');
    const snap = await finished(id);
    const h = snap.hosts.find((x) => x.hostname === 's-4')!;
    assert.equal(h.attempt, 2);
    assert.equal(h.state, 'failed'); // still labelled fail=yes
    assert.equal(runs('s-4'), 2);
    assert.equal(runs('s-0'), 1);
    await assert.rejects(ro.call(ro.client.retry, { id, reason: '', hosts: ['s-0'], force: false }), (e: FerryError) => e.code === ErrorCode.InvalidArgument && /only failed hosts/.test(e.message));
  });

  it('refuses a bad spec with every problem at file:line:col', async () => {
    await assert.rejects(ro.call(ro.client.create, { spec: 'plan: tiny\ntargets: { selector: role=edge }\nstrategy: { waves: [0] }\n', file: 'bad.yaml' }),
      (e: FerryError) => e.code === ErrorCode.InvalidArgument && /bad\.yaml:3:21: strategy\.waves\[0\]/.test(e.message));
    await assert.rejects(ro.call(ro.client.create, { spec: 'plan: tiny\ntargets: { selector: role=edge, exclude: [nope] }\n', file: 'r.yaml' }),
      (e: FerryError) => e.code === ErrorCode.InvalidArgument && /targets\.exclude "nope"/.test(e.message));
  });

  it('drives the same through the ferry CLI: create --watch, ls, show, logs, watch --json, exit codes', async () => {
    const ferry = (...args: string[]) => run([process.execPath, join(repoRoot(), 'bin', 'ferry.js'), '--data', c.config.dataDir, ...args], { timeoutMs: 60_000 });
    const ok = await ferry('rollout', 'create', '--plan', 'tiny', '--selector', 'role=edge', '--exclude', 's-4', '--waves', '2,100%', '--max-concurrency', '2', '--watch');
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const id = /created rollout (ro-[0-9a-f]+)/.exec(ok.stdout)![1]!;
    assert.match(ok.stdout, /wave-started: wave 1 of 2 started: 2 hosts/);
    assert.match(ok.stdout, /s-0: succeeded/);
    assert.match(ok.stdout, /finished: succeeded: 5 succeeded, 0 failed/);
    assert.match((await ferry('rollout', 'ls')).stdout, new RegExp(`${id}\\s+tiny\\s+tiny\\s+succeeded\\s+2/2\\s+5\\s+5\\s+0`));
    const show = await ferry('rollout', 'show', id);
    assert.match(show.stdout, /wave 1 +\[#+\] 2\/2/);
    assert.match(show.stdout, /s-3 +2 +succeeded +1/);
    const logs = await ferry('rollout', 'logs', id, '--host', 's-0');
    assert.match(logs.stdout, /\| hello from s-0/);
    assert.match(logs.stdout, /\[3\/3\] two: changed/);
    const json = await ferry('rollout', 'watch', id, '--json');
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse(json.stdout.trim().split('\n').at(-1)!), { type: 'result', id, state: 'succeeded', paused: false, pauseReason: null, counts: { succeeded: 5 } });

    // Budget 0 (the default) and onFailure pause (the default): the failing host pauses the rollout.
    const bad = await ferry('rollout', 'create', '--plan', 'tiny', '--host', 's-4', '--host', 's-0', '--max-concurrency', '1', '--json', '--watch', '--exit-on-pause');
    assert.equal(bad.code, 8, bad.stdout + bad.stderr);
    const badLines = bad.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; kind?: string; message?: string; id?: string });
    assert.ok(badLines.some((l) => l.kind === 'budget-exceeded' && /1 of 2 hosts failed, the rollout allows 0/.test(l.message!)), bad.stdout);
    const badId = badLines.at(-1)!.id!;
    assert.equal(runs('s-0'), 2, 's-0 did not start while paused (it ran once in each earlier rollout)');
    assert.equal((await ferry('rollout', 'abort', badId, '--reason', 'enough')).code, 0);
    const after = await ferry('rollout', 'watch', badId);
    assert.equal(after.code, 1, after.stdout);
    assert.match(after.stdout, /s-0 +1 +cancelled/);
    assert.equal((await ferry('rollout', 'approve', badId)).code, 2);
  });

  it('abort waits for a running host that is offline; --force stops waiting, and what the host reports later is still logged', async () => {
    // p-0 reaches the controller through a link the test can cut without stopping the agent or its job.
    const proxy = await LinkProxy.start(c.address);
    try {
      const p0 = await enrollAgent(c, 'p-0', { start: false, labels: { role: 'proxied' } });
      const { identity, keyPem, certPem, caPem } = p0.state.load();
      p0.state.saveEnrollment(keyPem, certPem, caPem, { ...identity, addresses: [proxy.address] });
      p0.loop = new SessionLoop({ state: p0.state, facts: async () => fakeFacts('p-0'), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
      p0.loop.start();
      agents.push(p0);
      await waitFor(() => p0.loop.state === 'connected', 10_000, 'p-0 connected');
      const { id } = await ro.call(ro.client.create, { spec: 'plan: tiny\nparams: { pause: "4" }\ntargets: { hosts: [p-0] }\n', file: 'force.yaml' });
      const host = async () => (await ro.call(ro.client.get, { id, afterSeq: 0 })).hosts[0]!;
      await waitFor(async () => (await host()).stepId === 'two', 20_000, 'p-0 in its long step');
      proxy.cut();
      await waitFor(async () => !(await host()).connected, 10_000, 'p-0 seen offline');

      const aborting = await ro.call(ro.client.abort, { id, reason: 'wrong version', hosts: [], force: false });
      assert.equal(aborting.state, 'aborting');
      await assert.rejects(ro.call(ro.client.abort, { id, reason: '', hosts: [], force: false }),
        (e: FerryError) => e.code === ErrorCode.InvalidArgument && /offline: p-0/.test(e.message) && /--force/.test(e.hint ?? ''));
      // A scheduling pass after the refused abort: an aborting rollout does not give up on a running host by itself.
      await c.ctx.rollouts.settle();
      assert.equal((await host()).state, 'running', 'an offline host cannot be known to have stopped');

      const forced = await ro.call(ro.client.abort, { id, reason: '', hosts: [], force: true });
      assert.equal(forced.state, 'aborted');
      const h = await host();
      assert.equal(h.state, 'cancelled');
      assert.match(h.message, /abandoned by abort --force while offline/);

      // Back online: the job ran to its end on the host meanwhile; its result is logged, the rollout is unchanged.
      proxy.restore();
      await waitFor(async () => (await ro.call(ro.client.logs, { id, host: 'p-0', attempt: 0 })).lines.some((l) => l.kind === 'result'), 20_000, 'p-0\'s result logged');
      const after = await ro.call(ro.client.get, { id, afterSeq: 0 });
      assert.equal(after.info!.state, 'aborted');
      assert.equal(after.hosts[0]!.state, 'cancelled');
    } finally {
      await proxy.close();
    }
  });
});
