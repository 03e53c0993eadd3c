import 'reflect-metadata';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, startController, waitFor, type TestAgent } from '../support/fixtures.js';
import { repoRoot, run } from '../support/proc.js';
import { describeStores } from '../support/stores.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
const PLAN = `name: hello
steps:
  - id: say
    type: exec
    args: { argv: [sh, -c, "echo planned-hello"] }
`;

describeStores('job history: ferry jobs ls | show | logs', function (store) {
  this.timeout(60_000);
  let c: Controller;
  let admin: Admin;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, '--admin-socket', c.config.adminSocket, ...args]);
  const json = async (...args: string[]) => {
    const r = await ferry(...args);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  };

  before(async () => {
    c = await startController(await store.flags());
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    // Hosts trust the keys they are given at enrollment.
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    agents.push(await enrollAgent(c, 'h1', { labels: { role: 'edge' } }), await enrollAgent(c, 'h2', { labels: { role: 'edge' } }));
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'connected');
  });
  after(async () => { admin.close(); await cleanup(c, agents); });

  it('keeps an exec run: who, what, each host\'s end, and its output per host', async () => {
    const r = await ferry('exec', '--selector', 'role=edge', '--', 'sh', '-c', 'echo out-$(hostname); echo err-line >&2; exit 0');
    assert.equal(r.code, 0, r.stderr);
    const [job] = await json('jobs', 'ls', '--kind', 'exec', '--json');
    assert.equal(job!['kind'], 'exec');
    assert.match(String(job!['what']), /^sh -c echo out-/);
    assert.equal(job!['createdBy'], 'local');
    assert.deepEqual(job!['counts'], { succeeded: 2 });
    const show = await ferry('jobs', 'show', String(job!['id']));
    assert.match(show.stdout, /^h1\s+ag-[0-9a-f]{12}\s+succeeded/m);
    assert.match(show.stdout, /^h2\s+ag-[0-9a-f]{12}\s+succeeded/m);
    const logs = await ferry('jobs', 'logs', String(job!['id']), '--host', 'h2');
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /^out-/m);
    assert.match(logs.stderr, /^err-line$/m);
    assert.match(logs.stdout, /^result: succeeded \(exit 0\)$/m);
    assert.doesNotMatch(logs.stdout, /h1 \|/, 'only the host asked for');
  });

  it('keeps a plan run beside exec runs, newest first, and names an unknown job or host', async () => {
    await admin.call(admin.client.pushPlan, { signed: signPlan(PLAN, 'hello.yaml', key.privatePem) });
    const r = await ferry('run', 'hello', '--selector', 'role=edge');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const jobs = await json('jobs', 'ls', '--json');
    assert.equal(jobs[0]!['kind'], 'plan');
    assert.equal(jobs[0]!['what'], 'hello');
    assert.equal(jobs[1]!['kind'], 'exec');
    const logs = await ferry('jobs', 'logs', String(jobs[0]!['id']));
    assert.match(logs.stdout, /^h1 \| planned-hello$/m);
    assert.match(logs.stdout, /^h2 \| \[1\/1\] say: changed/m);
    const unknown = await ferry('jobs', 'show', 'j-nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no job j-nope/);
    const noHost = await ferry('jobs', 'logs', String(jobs[0]!['id']), '--host', 'h9');
    assert.match(noHost.stderr, /did not run on h9/);
  });

  it('drops finished runs older than the retention, never a run still going', async () => {
    const [newest] = await json('jobs', 'ls', '--json');
    // A run from 40 days ago, and one of the same age still running on a host.
    const old = Date.now() - 40 * 86_400_000;
    await c.ctx.db.run(`INSERT INTO jobs (id, plan_id, params, check_mode, created_at, created_by, kind, argv) VALUES ('j-old', '', '{}', 0, ?, 'local', 'exec', '["true"]')`, [old]);
    await c.ctx.db.run(`INSERT INTO job_hosts (host_job_id, job_id, agent_id, hostname, state, next_seq, step_index, step_count, step_id, message, updated_at) VALUES ('j-old-a', 'j-old', 'ag-000000000000', 'x', 'succeeded', 0, 0, 0, '', '', ?)`, [old]);
    await c.ctx.db.run(`INSERT INTO job_events (host_job_id, seq, kind, body, at) VALUES ('j-old-a', 1, 'output', '{}', ?)`, [old]);
    await c.ctx.db.run(`INSERT INTO jobs (id, plan_id, params, check_mode, created_at, created_by, kind, argv) VALUES ('j-old-running', 'p', '{}', 0, ?, 'local', 'plan', '')`, [old]);
    await c.ctx.db.run(`INSERT INTO job_hosts (host_job_id, job_id, agent_id, hostname, state, next_seq, step_index, step_count, step_id, message, updated_at) VALUES ('j-old-running-a', 'j-old-running', 'ag-000000000000', 'x', 'running', 0, 0, 0, '', '', ?)`, [old]);
    assert.equal(await c.ctx.history.sweep(Date.now() - c.config.jobRetentionMs), 1);
    const ids = (await json('jobs', 'ls', '--json')).map((j) => j['id']);
    assert.ok(!ids.includes('j-old'));
    assert.ok(ids.includes('j-old-running'));
    assert.ok(ids.includes(newest!['id']));
    assert.equal((await c.ctx.db.all('SELECT 1 FROM job_events WHERE host_job_id = ?', ['j-old-a'])).length, 0);
  });
});
