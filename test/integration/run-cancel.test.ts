// `ferry run` and `ferry exec` while hosts misbehave: Ctrl-C cancels the plan
// on the hosts (not just the operator's view of it), --timeout cancels a host
// that runs too long, and a host whose session drops mid-job is reported.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { ExecEvent, JobEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, enrollBehindLink, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import type { LinkProxy } from '../support/link-proxy.js';
import { assertConforms, documentedKinds } from '../support/json-docs.js';
import { pgrep } from '../support/pgrep.js';
import { execRecord, runRecord } from '../../common/src/cli/json-records.js';
import { daemon, repoRoot } from '../support/proc.js';

describe('run and exec when hosts misbehave: Ctrl-C, --timeout, a dropped session', function () {
  this.timeout(90_000);
  let c: Controller;
  let admin: Admin;
  let a: TestAgent;
  let linked: { agent: TestAgent; proxy: LinkProxy };
  const key = generateSigningKey();
  const dir = tempDir('ferry-run-cancel-');
  // Durations unique to this run, so pgrep finds only this test's sleeps.
  const tag = 40 + (process.pid % 500) / 1000;
  const slowPlan = (name: string, secs: number) => `name: ${name}
steps:
  - id: slow
    type: exec
    args:
      shell: "echo begin; sleep ${secs}; touch ${dir}/${name}.done"
`;
  const events = (ev: JobEvent[], kind: string) => ev.filter((e) => e.event?.$case === kind);

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    a = await enrollAgent(c, 'edge-cancel', { labels: { t: 'cancel' } });
    linked = await enrollBehindLink(c, 'edge-drop', { t: 'drop' });
    await waitFor(() => c.ctx.sessions.get(a.id) !== undefined && c.ctx.sessions.get(linked.agent.id) !== undefined, 20_000, 'agents connected');
    for (const [name, secs] of [['ctrl-c', tag], ['timeout', tag + 0.001], ['drop', 3]] as const) {
      await admin.call(admin.client.pushPlan, { signed: signPlan(slowPlan(name, secs), `${name}.yaml`, key.privatePem) });
    }
  });
  after(async () => {
    admin.close();
    await linked.proxy.close();
    await cleanup(c, [a, linked.agent]);
  });

  it('Ctrl-C on `ferry run` cancels the plan on the host: exit 130, the step\'s process is stopped, the host job ends cancelled', async () => {
    const cli = daemon([process.execPath, join(repoRoot(), 'bin', 'ferry.js'), '--admin-socket', c.config.adminSocket, 'run', 'ctrl-c', '--selector', 't=cancel']);
    await waitFor(() => cli.out().includes('edge-cancel | begin'), 20_000, `the step began\n${cli.out()}`);
    assert.equal(pgrep(`sleep ${tag}$`), 1, 'the step is running');
    cli.proc.kill('SIGINT');
    assert.equal(await cli.exited, 130, cli.out());
    assert.match(cli.out(), /cancelling the plan on every host running it \(ferry jobs show j-/);
    await waitFor(() => pgrep(`sleep ${tag}$`) === 0, 15_000, 'the step\'s process stopped on the host');
    const row = await c.ctx.db.get<{ state: string }>('SELECT state FROM job_hosts WHERE agent_id = ? ORDER BY rowid DESC LIMIT 1', [a.id]);
    await waitFor(async () => (await c.ctx.db.get<{ state: string }>('SELECT state FROM job_hosts WHERE agent_id = ? ORDER BY rowid DESC LIMIT 1', [a.id]))?.state === 'cancelled',
      15_000, `the host job cancelled (was ${row?.state})`);
    assert.equal(existsSync(join(dir, 'ctrl-c.done')), false, 'the step did not run to its end');
  });

  it('--timeout cancels a host still running after it and reports why', async () => {
    const ev: JobEvent[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = admin.client.runPlan({ plan: 'timeout', params: {}, selector: 't=cancel', hosts: [], all: false, check: false, concurrency: 0, timeoutMs: 1_500 });
      s.on('data', (e: JobEvent) => ev.push(e));
      s.on('error', (e) => reject(fromServiceError(e)));
      s.on('end', () => resolve());
    });
    const [result] = events(ev, 'result');
    assert.ok(result?.event?.$case === 'result');
    assert.equal(result.event.value.status, 'cancelled', JSON.stringify(result.event.value));
    assert.match(result.event.value.message, /timeout/);
    const [summary] = events(ev, 'summary');
    assert.ok(summary?.event?.$case === 'summary');
    assert.deepEqual([summary.event.value.succeeded, summary.event.value.failed], [0, 1]);
    assert.equal(pgrep(`sleep ${tag + 0.001}$`), 0);
  });

  it('reports a host whose session drops mid-plan, and again when it is back; the plan finishes there', async () => {
    const ev: JobEvent[] = [];
    const finished = new Promise<void>((resolve, reject) => {
      const s = admin.client.runPlan({ plan: 'drop', params: {}, selector: 't=drop', hosts: [], all: false, check: false, concurrency: 0, timeoutMs: 0 });
      s.on('data', (e: JobEvent) => ev.push(e));
      s.on('error', (e) => reject(fromServiceError(e)));
      s.on('end', () => resolve());
    });
    await waitFor(() => events(ev, 'line').length > 0, 20_000, 'the step began');
    linked.proxy.cut();
    await waitFor(() => events(ev, 'link').length === 1, 20_000, 'the drop was reported');
    linked.proxy.restore();
    await finished;
    const links = events(ev, 'link').map((e) => (e.event?.$case === 'link' ? e.event.value.connected : undefined));
    assert.deepEqual(links, [false, true]);
    // `ferry run --json` prints these events as run.link records.
    assertConforms(documentedKinds(), 'run.link', events(ev, 'link').map(runRecord));
    const [result] = events(ev, 'result');
    assert.ok(result?.event?.$case === 'result');
    assert.equal(result.event.value.status, 'succeeded');
  });

  it('exec reports a host whose session drops mid-command', async () => {
    const ev: ExecEvent[] = [];
    const finished = new Promise<void>((resolve, reject) => {
      const s = admin.exec({ selector: 't=drop', hosts: [], all: false, argv: ['sh', '-c', 'echo begin; sleep 3; echo end'], timeoutMs: 0, concurrency: 0, env: {}, cwd: '' });
      s.on('data', (e: ExecEvent) => ev.push(e));
      s.on('error', (e) => reject(fromServiceError(e)));
      s.on('end', () => resolve());
    });
    await waitFor(() => ev.some((e) => e.event?.$case === 'line'), 20_000, 'the command began');
    linked.proxy.cut();
    await waitFor(() => ev.some((e) => e.event?.$case === 'link'), 20_000, 'the drop was reported');
    linked.proxy.restore();
    await finished;
    const links = ev.flatMap((e) => (e.event?.$case === 'link' ? [e.event.value.connected] : []));
    assert.deepEqual(links, [false, true]);
    assertConforms(documentedKinds(), 'exec.link', ev.filter((e) => e.event?.$case === 'link').map(execRecord));
    const lines = ev.flatMap((e) => (e.event?.$case === 'line' ? [e.event.value.line] : []));
    assert.deepEqual(lines, ['begin', 'end']);
  });
});
