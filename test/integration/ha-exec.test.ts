// `ferry exec` through one replica for hosts whose sessions are on another:
// the start goes through the store (the mailbox there delivers it), the
// output comes back to the caller in order, once, and is in the store for
// `ferry jobs logs`; an agent killed after it took the command on refuses the
// start sent again after its restart.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecEvent, ExecHostFinished, ExecLine, ExecRequest } from '../../common/src/gen/ferry/v1/admin.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';
import { enrollOverReplicas, holdingReplica } from '../support/replicas.js';
import { daemon, repoRoot, type Daemon } from '../support/proc.js';
import { pgrep } from '../support/pgrep.js';

function req(argv: string[], extra: Partial<ExecRequest> = {}): ExecRequest {
  return { selector: '', hosts: [], all: true, argv, timeoutMs: 60_000, concurrency: 0, env: {}, cwd: '', ...extra };
}

describe('ferry exec across replicas (one PostgreSQL database)', function () {
  this.timeout(120_000);
  const cs: Controller[] = [];
  const agents: TestAgent[] = [];
  const admins: Admin[] = [];
  const procs: Daemon[] = [];
  const out = tempDir('ferry-ha-exec-');
  const lines = (f: string): string[] => (existsSync(join(out, f)) ? readFileSync(join(out, f), 'utf8').split('\n').filter(Boolean) : []);
  const holding = (id: string) => holdingReplica(cs, id);

  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
    const store = await (await sharedPostgres()).createDatabase();
    for (let i = 0; i < 2; i++) cs.push(await startController({ store, 'lease-ttl': '1s' }, tempDir(`ferry-replica${i}-`)));
    await waitFor(() => cs.every((c) => c.ctx.joinAddresses().length === 2), 10_000, 'replicas see each other');
    for (const c of cs) admins.push(Admin.connect({ adminSocket: c.config.adminSocket }));
    await enrollOverReplicas(cs, agents, { prefix: 'x', count: 6, labels: { role: 'edge' }, eachReplica: 1 });
  });
  after(async () => {
    for (const d of procs) if (d.proc.exitCode === null && d.proc.signalCode === null) { d.proc.kill('SIGKILL'); await d.exited; }
    for (const pid of lines('napper.pids').map(Number)) try { process.kill(pid, 'SIGKILL'); } catch { /* ended */ }
    for (const a of admins) a.close();
    await cleanup(undefined, agents);
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });

  it('through replica A on hosts connected to replica B: runs once on each, every line reaches the caller in order, once, and is in jobs logs on any replica', async () => {
    const others = agents.filter((a) => holding(a.id) === 1);
    assert.ok(others.length > 0 && agents.some((a) => holding(a.id) === 0), 'hosts on both replicas');
    const n = 30;
    const got: ExecLine[] = [];
    const finished: ExecHostFinished[] = [];
    let jobId = '';
    const summary = await cs[0]!.ctx.exec.run(
      req(['sh', '-c', `echo run >> ${out}/$0.runs; i=1; while [ $i -le ${n} ]; do echo line-$i; i=$((i+1)); done; echo to-stderr >&2`]),
      'test', agents.map((a) => ({ agentId: a.id, hostname: a.hostname })), (ev: ExecEvent) => {
        if (ev.event?.$case === 'line') got.push(ev.event.value);
        if (ev.event?.$case === 'finished') finished.push(ev.event.value);
        if (ev.event?.$case === 'started' && !jobId) jobId = ev.event.value.jobId.slice(0, -(ev.event.value.agentId.length + 1));
      }, new AbortController().signal);
    assert.deepEqual({ succeeded: summary.succeeded, failed: summary.failed, offline: summary.offline }, { succeeded: agents.length, failed: 0, offline: 0 },
      JSON.stringify(finished.map((f) => [f.hostname, f.exitCode, f.error])));
    // $0 is "sh" for every host in one process tree: one line per host that ran it.
    assert.equal(lines('sh.runs').length, agents.length, 'each host ran the command once');
    const want = [...Array.from({ length: n }, (_, i) => `line-${i + 1}`), 'to-stderr'];
    for (const a of agents) {
      const mine = got.filter((l) => l.agentId === a.id);
      assert.deepEqual(mine.map((l) => l.line), want, `${a.hostname} (replica ${holding(a.id)}): every line once, in order`);
      assert.deepEqual(mine.map((l) => l.seq), want.map((_, i) => i + 1), `${a.hostname}: sequence numbers without gaps`);
    }
    for (const [i, admin] of admins.entries()) {
      const { lines: logged } = await admin.call(admin.client.jobLogs, { id: jobId, host: '' });
      for (const a of others) {
        const mine = logged.filter((l) => l.agentId === a.id);
        assert.deepEqual(mine.filter((l) => l.kind === 'output').map((l) => l.text), want, `${a.hostname}'s output in jobs logs on replica ${i}`);
        assert.deepEqual(mine.filter((l) => l.kind === 'result').map((l) => l.text), ['result: succeeded (exit 0)']);
      }
      const job = await admin.call(admin.client.getJob, { id: jobId });
      assert.deepEqual(job.hosts.map((h) => h.state), Array(agents.length).fill('succeeded'), `replica ${i} shows every host's end`);
    }
  });

  it('Ctrl-C through replica A stops the command on hosts connected to replica B; their jobs end cancelled by the hosts\' own results', async () => {
    const others = agents.filter((a) => holding(a.id) === 1);
    const tag = String(process.pid).padStart(6, '0');
    const ac = new AbortController();
    const going = new Set<string>();
    const finished: ExecHostFinished[] = [];
    let jobId = '';
    await cs[0]!.ctx.exec.run(req(['sh', '-c', `echo go; exec sleep 41.${tag}`]), 'test', others.map((a) => ({ agentId: a.id, hostname: a.hostname })), (ev) => {
      if (ev.event?.$case === 'started' && !jobId) jobId = ev.event.value.jobId.slice(0, -(ev.event.value.agentId.length + 1));
      if (ev.event?.$case === 'line') going.add(ev.event.value.agentId);
      if (ev.event?.$case === 'finished') finished.push(ev.event.value);
      if (going.size === others.length) ac.abort();
    }, ac.signal);
    assert.deepEqual(finished.map((f) => f.cancelled), Array(others.length).fill(true), 'the caller is answered at once');
    // Without the cancel reaching them through the store, the hosts sleep 41 s.
    await waitFor(() => pgrep(`sleep 41\\.${tag}`) === 0, 15_000, 'the commands stopped on the hosts');
    let states: string[] = [];
    await waitFor(async () => {
      states = (await admins[1]!.call(admins[1]!.client.getJob, { id: jobId })).hosts.map((h) => h.state);
      return states.length === others.length && states.every((x) => x === 'cancelled');
    }, 15_000, () => `every host job cancelled: ${JSON.stringify(states)}`);
  });

  it('an agent killed after it took a command on (nothing heard back yet) refuses the start sent again after its restart: the command ran once', async () => {
    const a = await enrollAgent(cs[0]!, 'x-killed', { start: false });
    const startAgent = () => {
      const d = daemon([process.execPath, join(repoRoot(), 'bin', 'ferry-agent.js'), 'run', '--state', a.state.dir, '--root', tempDir('ferry-root-'), '--log-level', 'warn']);
      procs.push(d);
      return d;
    };
    let agent = startAgent();
    await waitFor(() => holding(a.id) >= 0, 20_000, () => `agent connected\n${agent.out()}`);
    const asked = 1 - holding(a.id);
    let finished: ExecHostFinished | undefined;
    let startedId = '';
    // Silent until killed: the controller holds nothing of the job, so it is still "dispatched" and its start is sent again.
    const run = cs[asked]!.ctx.exec.run(req(['sh', '-c', `echo $$ >> ${out}/napper.pids; exec sleep 30`], { all: false }), 'test',
      [{ agentId: a.id, hostname: a.hostname }], (ev) => {
        if (ev.event?.$case === 'started') startedId = ev.event.value.jobId;
        if (ev.event?.$case === 'finished') finished = ev.event.value;
      }, new AbortController().signal);
    await waitFor(() => lines('napper.pids').length === 1, 20_000, () => `the command started\n${agent.out()}`);
    agent.proc.kill('SIGKILL');
    await agent.exited;
    assert.equal((await cs[asked]!.ctx.jobs.hostJob(startedId))?.state, 'dispatched', 'nothing was heard back before the kill');
    agent = startAgent();
    const summary = await run;
    assert.deepEqual({ failed: summary.failed, succeeded: summary.succeeded }, { failed: 1, succeeded: 0 });
    assert.match(finished!.error, /restarted after it took the command on; it is not run again/);
    assert.equal(lines('napper.pids').length, 1, 'the command ran once');
    const row = await cs[asked]!.ctx.jobs.hostJob(startedId);
    assert.equal(row?.state, 'lost');
  });
});
