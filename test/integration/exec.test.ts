import 'reflect-metadata';
import assert from 'node:assert/strict';
import type { ExecEvent, ExecHostFinished, ExecLine, ExecRequest, ExecSummary } from '../../common/src/gen/ferry/v1/admin.js';
import type { Controller } from '../../controller/src/controller.js';
import { pgrep } from '../support/pgrep.js';
import { cleanup, enrollAgent, startController, waitFor, type TestAgent } from '../support/fixtures.js';

interface Run {
  lines: ExecLine[];
  finished: ExecHostFinished[];
  summary: ExecSummary;
}

function req(argv: string[], extra: Partial<ExecRequest> = {}): ExecRequest {
  return { selector: '', hosts: [], all: false, argv, timeoutMs: 0, concurrency: 0, env: {}, cwd: '', ...extra };
}

async function runExec(c: Controller, r: ExecRequest, onEvent?: (ev: ExecEvent) => void, signal = new AbortController().signal): Promise<Run> {
  const lines: ExecLine[] = [];
  const finished: ExecHostFinished[] = [];
  const all = await c.ctx.agents.list();
  const { parseSelector } = await import('../../common/src/labels.js');
  const sel = parseSelector(r.selector);
  const targets = all.filter((a) => sel.matches(a.labels)).map((a) => ({ agentId: a.id, hostname: a.hostname }));
  const summary = await c.ctx.exec.run(r, 'test', targets, (ev) => {
    if (ev.event?.$case === 'line') lines.push(ev.event.value);
    if (ev.event?.$case === 'finished') finished.push(ev.event.value);
    onEvent?.(ev);
  }, signal);
  return { lines, finished, summary };
}


describe('exec across agents', function () {
  this.timeout(60_000);
  let c: Controller;
  const agents: TestAgent[] = [];
  before(async () => {
    c = await startController();
    for (const [h, role] of [['edge-1', 'edge'], ['edge-2', 'edge'], ['cloud-1', 'cloud']] as const) {
      agents.push(await enrollAgent(c, h, { labels: { role } }));
    }
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'all connected');
  });
  after(async () => cleanup(c, agents));

  it('runs on the selected hosts and streams stdout and stderr lines with exit codes', async () => {
    const r = await runExec(c, req(['sh', '-c', 'echo out-$0; echo err >&2; exit 0'], { selector: 'role=edge' }));
    assert.deepEqual(r.summary, { matched: 2, succeeded: 2, failed: 0, offline: 0 });
    assert.deepEqual(r.finished.map((f) => f.hostname).sort(), ['edge-1', 'edge-2']);
    assert.equal(r.lines.filter((l) => !l.stderr && l.line === 'out-sh').length, 2);
    assert.equal(r.lines.filter((l) => l.stderr && l.line === 'err').length, 2);
  });

  it('reports non-zero exits, missing commands and offline hosts as failures', async () => {
    const fail = await runExec(c, req(['sh', '-c', 'exit 7'], { selector: 'role=cloud' }));
    assert.equal(fail.finished[0]!.exitCode, 7);
    assert.equal(fail.summary.failed, 1);
    const missing = await runExec(c, req(['/no/such/program'], { selector: 'role=cloud' }));
    assert.match(missing.finished[0]!.error, /command not found: \/no\/such\/program/);
    const offline = await enrollAgent(c, 'offline-1', { labels: { role: 'gone' }, start: false });
    const off = await runExec(c, req(['true'], { selector: 'role=gone' }));
    assert.equal(off.summary.offline, 1);
    assert.equal(off.finished[0]!.offline, true);
    await cleanup(undefined, [offline]);
  });

  it('kills the whole process group on timeout', async () => {
    const marker = `ferry-timeout-${Date.now()}`;
    // Durations unique to this run, so processes of other tests or hosts on this machine never match.
    const tag = String(process.pid).padStart(6, '0');
    const r = await runExec(c, req(['sh', '-c', `sleep 30.${tag} & sleep 31.${tag}; echo ${marker}`], { selector: 'role=cloud', timeoutMs: 500 }));
    assert.equal(r.finished[0]!.timedOut, true);
    assert.match(r.finished[0]!.error, /timed out after 500 ms/);
    await waitFor(() => pgrep(`sleep 3[01]\\.${tag}`) === 0, 7000, 'child processes killed');
  });

  it('cancels on every host when the operator aborts', async () => {
    const ac = new AbortController();
    const started = new Set<string>();
    const tag = String(process.pid).padStart(6, '0');
    const p = runExec(c, req(['sh', '-c', `echo go; sleep 40.${tag}`], { selector: 'role=edge' }), (ev) => {
      if (ev.event?.$case === 'line') started.add(ev.event.value.agentId);
      if (started.size === 2) ac.abort();
    }, ac.signal);
    const r = await p;
    assert.equal(r.finished.every((f) => f.cancelled), true);
    await waitFor(() => pgrep(`sleep 40\\.${tag}`) === 0, 7000, 'cancelled processes gone');
  });

  it('respects --concurrency', async () => {
    let running = 0;
    let peak = 0;
    await runExec(c, req(['sh', '-c', 'sleep 0.2'], { concurrency: 1 }), (ev) => {
      if (ev.event?.$case === 'started') peak = Math.max(peak, ++running);
      if (ev.event?.$case === 'finished') running--;
    });
    assert.equal(peak, 1);
  });

  for (const side of ['agent', 'controller'] as const) {
    it(`loses and duplicates no line when the session drops mid-command (${side} side)`, async () => {
      const a = agents[0]!;
      const n = 60;
      let dropped = false;
      const r = await runExec(c, req(['sh', '-c', `i=1; while [ $i -le ${n} ]; do echo line-$i; i=$((i+1)); sleep 0.02; done`],
        { selector: 'ferry/hostname=edge-1' }), (ev) => {
        if (!dropped && ev.event?.$case === 'line' && ev.event.value.seq === 10) {
          dropped = true;
          if (side === 'agent') a.loop.reconnectNow();
          else c.ctx.sessions.get(a.id)!.close('test: cut the session');
        }
      });
      assert.ok(dropped);
      assert.equal(r.finished[0]!.exitCode, 0);
      assert.deepEqual(r.lines.map((l) => l.line), Array.from({ length: n }, (_, i) => `line-${i + 1}`));
      assert.deepEqual(r.lines.map((l) => l.seq), Array.from({ length: n }, (_, i) => i + 1));
      await waitFor(() => a.loop.outbox.size === 0, 5000, 'outbox drained after acks');
    });
  }
});
