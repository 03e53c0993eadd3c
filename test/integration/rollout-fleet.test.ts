import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { RolloutSnapshot } from '../../common/src/gen/ferry/v1/rollouts.js';
import { silentLogger } from '../../common/src/log.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import { watchRollout } from '../../controller/src/cli/cmd-rollout-watch.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';

const HOSTS = 50;
/** Hosts labelled fail=yes: their step "boom" exits 3. */
const FAILING = ['f-07', 'f-13', 'f-21', 'f-33', 'f-44'];

/** Each run appends start-<tag> and (unless it failed) end-<tag> to OUT/<hostname>.log, one step each. */
const PLAN = (out: string) => `name: fleet
params:
  tag: a
  pause: "0.05"
steps:
  - id: begin
    type: exec
    args: { argv: [sh, -c, "echo start-{{ params.tag }} >> ${out}/{{ facts.hostname }}.log"] }
  - id: boom
    type: exec
    args: { argv: [sh, -c, "echo boom on {{ facts.hostname }} >&2; exit 3"] }
    when: { labels: { fail: "yes" } }
  - id: work
    type: exec
    args: { argv: [sleep, "{{ params.pause }}"] }
  - id: end
    type: exec
    args: { argv: [sh, -c, "echo end-{{ params.tag }} >> ${out}/{{ facts.hostname }}.log"] }
`;

const name = (i: number) => `f-${String(i).padStart(2, '0')}`;

describe(`rollouts across ${HOSTS} in-process agents`, function () {
  this.timeout(300_000);
  let c: Controller;
  let admin: Admin;
  let ro: Rollouts;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const out = tempDir('ferry-fleet-out-');

  const log = (host: string): string[] => (existsSync(join(out, `${host}.log`)) ? readFileSync(join(out, `${host}.log`), 'utf8').trim().split('\n') : []);
  const starts = (host: string, tag: string) => log(host).filter((l) => l === `start-${tag}`).length;

  function connect(): void {
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    ro = new Rollouts(admin);
  }

  const get = (id: string) => ro.call(ro.client.get, { id, afterSeq: 0 });
  async function until(id: string, cond: (s: RolloutSnapshot) => boolean, what: string, ms = 90_000): Promise<RolloutSnapshot> {
    let snap: RolloutSnapshot | undefined;
    await waitFor(async () => cond((snap = await get(id))), ms, what);
    return snap!;
  }
  const finished = (id: string) => until(id, (s) => ['succeeded', 'failed', 'aborted'].includes(s.info!.state) && !s.hosts.some((h) => h.state === 'running'), `rollout ${id} to finish`);
  const create = async (tag: string, strategy: string, extra = '') =>
    (await ro.call(ro.client.create, { spec: `plan: fleet\nparams: { tag: ${tag}${extra} }\ntargets: { selector: fleet=yes }\nstrategy: ${strategy}\n`, file: `${tag}.yaml` })).id;
  const by = (s: RolloutSnapshot, state: string) => s.hosts.filter((h) => h.state === state).map((h) => h.hostname);

  before(async () => {
    c = await startController();
    connect();
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    await admin.call(admin.client.pushPlan, { signed: signPlan(PLAN(out), 'fleet.yaml', key.privatePem) });
    for (let i = 0; i < HOSTS; i++) {
      const host = name(i);
      const a = await enrollAgent(c, host, { start: false, labels: { fleet: 'yes', ...(FAILING.includes(host) ? { fail: 'yes' } : {}) } });
      // Every agent works under its own private root.
      a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts(host), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
      a.loop.start();
      agents.push(a);
    }
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 30_000, 'all agents connected');
  });
  after(async () => { admin.close(); await cleanup(c, agents); rmSync(out, { recursive: true, force: true }); });

  it('runs 1 / 10% / 50% / 100% in order with 5 failures inside a 10% budget: failed, every host once', async () => {
    const id = await create('a', '{ waves: [1, "10%", "50%", "100%"], maxConcurrency: 10, errorBudget: "10%" }');
    const s = await finished(id);
    assert.equal(s.info!.state, 'failed');
    assert.equal(s.info!.paused, false, 'never paused: 5 failures do not exceed 10% of 50');
    assert.deepEqual(s.waves.map((w) => w.size), [1, 4, 20, 25]);
    assert.deepEqual(by(s, 'failed').sort(), FAILING);
    assert.equal(by(s, 'succeeded').length, HOSTS - FAILING.length);
    for (let i = 0; i < HOSTS; i++) assert.equal(starts(name(i), 'a'), 1, `${name(i)} ran once`);
    for (const h of s.hosts.filter((x) => x.state === 'failed')) {
      assert.equal(h.stepId, 'boom');
      assert.deepEqual(h.lastLines, [`boom on ${h.hostname}`]);
    }
  });

  it('pauses when a wave exceeds its budget (3 > floor(10% of 20)), lets running hosts finish, starts nothing; resume completes it', async () => {
    const id = await create('b', '{ waves: [1, "10%", "50%", "100%"], maxConcurrency: 2, errorBudget: { perWave: "10%", total: "100%" } }');
    const paused = await until(id, (s) => s.info!.paused, 'the budget to pause the rollout');
    assert.match(paused.info!.pauseReason, /wave 3: 3 of 20 hosts failed, the wave allows 2/);
    const settled = await until(id, (s) => !s.hosts.some((h) => h.state === 'running'), 'running hosts to finish');
    // A scheduling pass after the last result: whatever a paused rollout would wrongly start, it starts here.
    await c.ctx.rollouts.settle();
    const still = await get(id);
    assert.deepEqual(by(still, 'succeeded'), by(settled, 'succeeded'), 'no host started while paused');
    assert.ok(still.hosts.filter((h) => h.wave === 3).every((h) => h.state === 'pending'), 'wave 4 did not begin');
    assert.ok(still.hosts.some((h) => h.wave === 2 && h.state === 'pending') || by(still, 'succeeded').length === 19, 'wave 3 was cut short');
    await ro.call(ro.client.resume, { id, reason: '', hosts: [], force: false });
    const s = await finished(id);
    // Wave 4 holds f-33 and f-44: 2 of 25 is within floor(2.5), so it did not pause again.
    assert.equal(s.info!.state, 'failed');
    assert.equal(s.info!.paused, false);
    assert.deepEqual(by(s, 'failed').sort(), FAILING);
    for (let i = 0; i < HOSTS; i++) assert.equal(starts(name(i), 'b'), 1, `${name(i)} ran once`);
  });

  it('operator pause mid-wave holds new starts; abort cancels waiting hosts and kills running steps', async () => {
    const id = await create('c', '{ waves: [10, "100%"], maxConcurrency: 5, errorBudget: "100%" }', ', pause: "3"');
    await until(id, (s) => by(s, 'running').length === 5, '5 hosts running');
    await ro.call(ro.client.pause, { id, reason: 'checking something', hosts: [], force: false });
    const p = await get(id);
    assert.equal(p.info!.pauseReason, 'checking something');
    const running = by(p, 'running');
    assert.equal(running.length, 5);
    await ro.call(ro.client.abort, { id, reason: 'wrong version', hosts: [], force: false });
    const s = await finished(id);
    assert.equal(s.info!.state, 'aborted');
    assert.deepEqual(by(s, 'cancelled').sort(), [...by(s, 'cancelled')].sort());
    assert.equal(by(s, 'cancelled').length, HOSTS, JSON.stringify(s.hosts.map((h) => [h.hostname, h.state])));
    for (const h of running) assert.deepEqual(log(h).filter((l) => l.endsWith('-c')), ['start-c'], `${h}: step "work" was killed, "end" never ran`);
    assert.equal(agents.filter((a) => starts(a.hostname, 'c') > 0).length, 5, 'only the five running hosts ever started');
    const events = (await c.ctx.rollouts.store.events(id)).map((e) => e.kind);
    assert.ok(events.includes('paused') && events.includes('abort') && events.includes('finished'), events.join(','));
    const audit = (await c.ctx.audit.list(20)).filter((a) => a.subject === id).map((a) => a.action);
    assert.deepEqual(audit.sort(), ['rollout.abort', 'rollout.create', 'rollout.paused']);
  });

  it('serialises two rollouts on the same hosts: never interleaved on any host', async () => {
    const [x, y] = await Promise.all([
      create('x', '{ waves: ["100%"], maxConcurrency: 25, errorBudget: "100%" }', ', pause: "0.2"'),
      create('y', '{ waves: ["100%"], maxConcurrency: 25, errorBudget: "100%" }', ', pause: "0.2"'),
    ]);
    const [sx, sy] = [await finished(x), await finished(y)];
    assert.deepEqual(by(sx, 'failed').sort(), FAILING);
    assert.deepEqual(by(sy, 'failed').sort(), FAILING);
    for (let i = 0; i < HOSTS; i++) {
      const seq = log(name(i)).filter((l) => /-(x|y)$/.test(l));
      const ok = FAILING.includes(name(i)) ? seq.length === 2 && seq[0]!.slice(-1) !== seq[1]!.slice(-1)
        : seq.length === 4 && seq[0]!.startsWith('start') && seq[1] === `end-${seq[0]!.slice(-1)}` && seq[2]!.startsWith('start') && seq[3] === `end-${seq[2]!.slice(-1)}`;
      assert.ok(ok, `${name(i)}: ${seq.join(' ')}`);
    }
  });

  it('survives a controller restart mid-rollout: it continues from the store, results arrive on reconnect, no host runs twice', async () => {
    const id = await create('r', '{ waves: [5, "100%"], maxConcurrency: 10, errorBudget: "100%" }', ', pause: "0.6"');
    await until(id, (s) => by(s, 'succeeded').length >= 8 && by(s, 'running').length > 0, 'the rollout under way');
    // An operator's `rollout watch --json` on a connection of its own, open across the restart.
    const watcherAdmin = Admin.connect({ adminSocket: c.config.adminSocket });
    let watched = '';
    const sink = { isTTY: false, write: (t: string) => { watched += t; return true; } } as unknown as NodeJS.WriteStream;
    const watch = watchRollout(new Rollouts(watcherAdmin), id, { json: true, exitOnPause: false }, sink);
    await waitFor(() => watched.includes('"type":"event"'), 10_000, 'the watch to show events');
    const { dataDir } = c.config;
    const port = c.port;
    admin.close();
    // Hosts keep running their steps while the controller is away (stop closes every session first):
    // wait until one that was running finishes, so its result must arrive on reconnect.
    const ends = () => Array.from({ length: HOSTS }, (_, i) => log(name(i)).filter((l) => l === 'end-r').length).reduce((a, b) => a + b, 0);
    const endsBefore = ends();
    await c.stop(1_000);
    await waitFor(() => ends() > endsBefore, 10_000, 'a host to finish its step while the controller is away');
    c = await startController({ listen: `127.0.0.1:${port}` }, dataDir);
    connect();
    const s = await finished(id);
    assert.equal(s.info!.state, 'failed', JSON.stringify(s.hosts.filter((h) => h.state !== 'succeeded').map((h) => [h.hostname, h.state, h.message])));
    assert.deepEqual(by(s, 'failed').sort(), FAILING);
    assert.equal(by(s, 'succeeded').length, HOSTS - FAILING.length);
    for (let i = 0; i < HOSTS; i++) {
      assert.equal(starts(name(i), 'r'), 1, `${name(i)} ran once`);
      if (!FAILING.includes(name(i))) assert.equal(log(name(i)).filter((l) => l === 'end-r').length, 1);
    }
    // The watch reconnected by itself and showed every event once, in order, then the outcome.
    assert.equal(await watch, 1, 'exit code of a failed rollout');
    watcherAdmin.close();
    const lines = watched.trim().split('\n').map((l) => JSON.parse(l) as { type: string; seq?: number; state?: string });
    const seqs = lines.filter((l) => l.type === 'event').map((l) => Number(l.seq));
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'no event twice, none out of order');
    assert.equal(seqs.length, (await c.ctx.rollouts.store.events(id)).length, 'no event missing');
    assert.deepEqual(lines.at(-1), { ...lines.at(-1), type: 'result', state: 'failed' });
    // No output was lost: every host's stored events end with its result.
    for (const h of s.hosts) {
      const logs = await ro.call(ro.client.logs, { id, host: h.hostname, attempt: 0 });
      assert.equal(logs.lines.filter((l) => l.kind === 'result').length, 1, h.hostname);
    }
  });
});
