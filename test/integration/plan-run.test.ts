import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';
import type { JobEvent, JobSummary } from '../../common/src/gen/ferry/v1/admin.js';
import type { StepEvent } from '../../common/src/gen/ferry/v1/session.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { silentLogger } from '../../common/src/log.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, fakeFacts, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';

const PLAN = `name: demo
description: writes a config, edits it, runs a command, verifies
params:
  greeting: hello
steps:
  - id: config
    type: file.install
    args:
      dest: /etc/demo/app.yaml
      content: |
        # demo config: comments must survive edits
        server:
          port: 8080
        modules:
          stream:
            enable: false
      mode: "0644"
    creates: /etc/demo/app.yaml   # the base config is installed once; later edits own it
  - id: enable-stream
    type: yaml.edit
    args:
      file: /etc/demo/app.yaml
      set:
        - { path: modules.stream.enable, value: true }
  - id: say
    type: exec
    args:
      argv: [sh, -c, "echo {{ params.greeting }} from {{ facts.hostname }}"]
    unless: [test, -f, ROOT/etc/demo/said]
  - id: mark
    type: exec
    args:
      argv: [touch, ROOT/etc/demo/said]
    creates: /etc/demo/said
  - id: verify
    type: assert
    args:
      command: [grep, -A, "2", "stream:", ROOT/etc/demo/app.yaml]
      contains: "enable: true"
`;

interface RunResult { summary: JobSummary; steps: StepEvent[]; lines: string[]; results: JobEvent[] }

describe('plans run on agents', function () {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const root = tempDir('ferry-root-');
  const plan = PLAN.replaceAll('ROOT', root);

  function run(name: string, opts: { check?: boolean; params?: Record<string, string>; selector?: string } = {}): Promise<RunResult> {
    const out: RunResult = { summary: undefined as unknown as JobSummary, steps: [], lines: [], results: [] };
    return new Promise((resolve, reject) => {
      const s = admin.client.runPlan({ plan: name, params: opts.params ?? {}, selector: opts.selector ?? '', hosts: [], all: !opts.selector, check: Boolean(opts.check), concurrency: 0, timeoutMs: 0 });
      s.on('data', (ev: JobEvent) => {
        if (ev.event?.$case === 'summary') out.summary = ev.event.value;
        if (ev.event?.$case === 'step' && ev.event.value.finished) out.steps.push(ev.event.value);
        if (ev.event?.$case === 'line') out.lines.push(ev.event.value.line);
        if (ev.event?.$case === 'result') out.results.push(ev);
      });
      s.on('error', (e) => reject(fromServiceError(e)));
      s.on('end', () => resolve(out));
    });
  }

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    const a = await enrollAgent(c, 'edge-1', { start: false });
    // The agent's step executors work under a private root instead of "/".
    a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts('edge-1'), log: silentLogger(), backoff: new Backoff(50, 500), root });
    a.loop.start();
    agents.push(a);
    await waitFor(() => a.loop.state === 'connected', 10_000, 'connected');
  });
  after(async () => { admin.close(); await cleanup(c, agents); });

  it('refuses an invalid plan with every problem at file:line:col', async () => {
    const bad = 'name: Bad Name\nsteps:\n  - id: a\n    type: yaml.edti\n    args: {}\n';
    await assert.rejects(admin.call(admin.client.pushPlan, { signed: signPlan(bad, 'bad.yaml', key.privatePem) }), (e: FerryError) => {
      assert.equal(e.code, ErrorCode.InvalidArgument);
      assert.match(e.message, /bad\.yaml:1:7: /);
      assert.match(e.message, /bad\.yaml:4:11: .*yaml\.edit/);
      return true;
    });
  });

  it('runs a plan: every step reports, files are changed, output streams back', async () => {
    await admin.call(admin.client.pushPlan, { signed: signPlan(plan, 'demo.yaml', key.privatePem) });
    const r = await run('demo');
    assert.deepEqual(r.summary.succeeded, 1, JSON.stringify(r.results));
    assert.deepEqual(r.steps.map((s) => `${s.stepId}:${s.status}`), ['config:changed', 'enable-stream:changed', 'say:changed', 'mark:changed', 'verify:unchanged']);
    assert.ok(r.lines.includes('hello from edge-1'), r.lines.join('\n'));
    const text = readFileSync(join(root, 'etc/demo/app.yaml'), 'utf8');
    assert.match(text, /# demo config: comments must survive edits/);
    assert.match(text, /enable: true/);
  });

  it('is a no-op the second time, reported as unchanged', async () => {
    const r = await run('demo', { params: { greeting: 'hi' } });
    assert.equal(r.summary.succeeded, 1);
    assert.deepEqual(r.steps.filter((s) => s.stepId !== 'verify').map((s) => s.status), ['unchanged', 'unchanged', 'unchanged', 'unchanged']);
    assert.ok(!r.lines.includes('hi from edge-1'), 'the guarded command did not run again');
  });

  it('check mode shows what would change and changes nothing', async () => {
    const edited = plan.replace('value: true }', 'value: false }').replace('name: demo', 'name: demo-check');
    await admin.call(admin.client.pushPlan, { signed: signPlan(edited, 'demo-check.yaml', key.privatePem) });
    const r = await run('demo-check', { check: true });
    const edit = r.steps.find((s) => s.stepId === 'enable-stream')!;
    assert.equal(edit.status, 'changed');
    assert.match(edit.diff, /-\s+enable: true[\s\S]*\+\s+enable: false/);
    assert.match(readFileSync(join(root, 'etc/demo/app.yaml'), 'utf8'), /enable: true/);
  });

  it('hands steps the agent\'s own fleet certificate paths (containerd.mirror "ca: fleet")', async () => {
    // The agent's state directory is outside the private root it manages, so the host's
    // containerd could not read its certificate: the step must say so, naming the agent's file.
    const mirrorPlan = `name: mirror\nsteps:\n  - id: mirror\n    type: containerd.mirror\n    args:\n      mirrors: ["https://10.0.0.1:5000"]\n      upstreams: [docker.io]\n      containerdConfig: skip\n`;
    await admin.call(admin.client.pushPlan, { signed: signPlan(mirrorPlan, 'mirror.yaml', key.privatePem) });
    const r = await run('mirror');
    const step = r.steps.find((s) => s.stepId === 'mirror')!;
    assert.equal(step.status, 'failed');
    assert.equal(step.errorCode, 'INVALID_ARGUMENT');
    assert.ok(step.message.includes(`the agent's fleet file ${agents[0]!.state.caPath} is outside the host root`), step.message);
    assert.equal(existsSync(join(root, 'etc/containerd/certs.d')), false);
  });

  it('refuses bad params before touching any host', async () => {
    await assert.rejects(run('demo', { params: { nope: 'x' } }), (e: FerryError) => /nope/.test(e.message));
  });

  for (const side of ['agent', 'controller'] as const) {
    it(`loses and duplicates no line when the session drops mid-job (${side} side), like exec output`, async () => {
      const n = 60;
      const chatty = `name: chatty-${side}
steps:
  - id: talk
    type: exec
    args: { argv: [sh, -c, "i=1; while [ $i -le ${n} ]; do echo line-$i; i=$((i+1)); sleep 0.02; done"] }
`;
      await admin.call(admin.client.pushPlan, { signed: signPlan(chatty, `chatty-${side}.yaml`, key.privatePem) });
      const a = agents[0]!;
      const lines: Array<{ line: string; seq: number }> = [];
      let dropped = false;
      let summary: JobSummary | undefined;
      await new Promise<void>((resolve, reject) => {
        const s = admin.client.runPlan({ plan: `chatty-${side}`, params: {}, selector: '', hosts: [], all: true, check: false, concurrency: 0, timeoutMs: 0 });
        s.on('data', (ev: JobEvent) => {
          if (ev.event?.$case === 'summary') summary = ev.event.value;
          if (ev.event?.$case !== 'line') return;
          lines.push({ line: ev.event.value.line, seq: ev.event.value.seq });
          if (!dropped && ev.event.value.line === 'line-10') {
            dropped = true;
            if (side === 'agent') a.loop.reconnectNow();
            else c.ctx.sessions.get(a.id)!.close('test: cut the session');
          }
        });
        s.on('error', (e) => reject(fromServiceError(e)));
        s.on('end', () => resolve());
      });
      assert.ok(dropped);
      assert.equal(summary?.succeeded, 1);
      assert.deepEqual(lines.map((l) => l.line), Array.from({ length: n }, (_, i) => `line-${i + 1}`));
      const seqs = lines.map((l) => l.seq);
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in sequence order');
      assert.equal(new Set(seqs).size, n, 'no sequence number twice');
      await waitFor(() => a.loop.outbox.size === 0, 5000, 'outbox drained after acks');
    });
  }

  it('resumes a job at the interrupted step after the agent restarts, without re-running finished steps', async () => {
    const slow = `name: slow
steps:
  - id: one
    type: exec
    args: { argv: [sh, -c, "echo one >> ${root}/runs"] }
  - id: two
    type: exec
    args: { argv: [sh, -c, "echo two-start >> ${root}/runs; sleep 2; echo two-end >> ${root}/runs"] }
  - id: three
    type: exec
    args: { argv: [sh, -c, "echo three >> ${root}/runs"] }
`;
    await admin.call(admin.client.pushPlan, { signed: signPlan(slow, 'slow.yaml', key.privatePem) });
    const a = agents[0]!;
    const p = run('slow');
    await waitFor(() => existsSync(join(root, 'runs')) && readFileSync(join(root, 'runs'), 'utf8').includes('two-start'), 10_000, 'step two started');
    await a.loop.stop(200); // the agent goes down mid-step (step two is suspended, not finished)
    a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts('edge-1'), log: silentLogger(), backoff: new Backoff(50, 500), root });
    a.loop.start();
    const r = await p;
    assert.equal(r.summary.succeeded, 1, JSON.stringify(r.results));
    const runs = readFileSync(join(root, 'runs'), 'utf8').trim().split('\n');
    assert.deepEqual(runs.filter((l) => l === 'one'), ['one'], 'step one ran once');
    assert.equal(runs.filter((l) => l === 'two-start').length, 2, 'step two was re-run');
    assert.deepEqual(runs.slice(-2), ['two-end', 'three']);
    const two = r.steps.filter((s) => s.stepId === 'two');
    assert.equal(two.at(-1)!.resumed, true);
  });
});
