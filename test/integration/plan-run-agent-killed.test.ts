// A real agent process killed with SIGKILL in the middle of a plan step: the
// step's process group outlives it. The restarted agent must end that group
// before it runs the step again, so the step never runs twice at once.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { JobEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { daemon, repoRoot, type Daemon } from '../support/proc.js';
import { processAlive, startTicks } from '../support/procfs.js';
import { bootId } from '../../common/src/proc/process-group.js';

describe('plan step after the agent is killed (kill -9)', function () {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  let a: TestAgent;
  const procs: Daemon[] = [];
  const bystanders: number[] = [];
  const key = generateSigningKey();
  const root = tempDir('ferry-root-');
  const agentBin = join(repoRoot(), 'bin', 'ferry-agent.js');

  function startAgent(): Daemon {
    const d = daemon([process.execPath, agentBin, 'run', '--state', a.state.dir, '--root', root, '--log-level', 'warn']);
    procs.push(d);
    return d;
  }
  const lines = (f: string) => (existsSync(join(root, f)) ? readFileSync(join(root, f), 'utf8').split('\n').filter(Boolean) : []);

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    a = await enrollAgent(c, 'edge-kill', { start: false });
  });
  after(async () => {
    for (const pid of bystanders) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    for (const d of procs) if (d.proc.exitCode === null && d.proc.signalCode === null) { d.proc.kill('SIGTERM'); await d.exited; }
    admin.close();
    await cleanup(c, [a]);
  });

  it('ends the step\'s leftover process group before running the step again (it finishes once), and leaves a reused pid alone', async () => {
    // The first run sleeps far longer than any restart takes (a 15 s sleep ended by itself once on a loaded
    // machine, before the new agent got to it); the re-run, the one that must finish, sleeps 1 s.
    const plan = `name: slow-step
steps:
  - id: slow
    type: exec
    args:
      shell: "echo $$ >> ${root}/begins.txt; echo begin-$$; if [ $(wc -l < ${root}/begins.txt) -eq 1 ]; then sleep 120; else sleep 1; fi; echo end-$$ >> ${root}/ends.txt"
`;
    await admin.call(admin.client.pushPlan, { signed: signPlan(plan, 'slow-step.yaml', key.privatePem) });
    let agent = startAgent();
    await waitFor(() => c.ctx.sessions.get(a.id) !== undefined, 20_000, `agent connected\n${agent.out()}`);
    const results: JobEvent[] = [];
    const out: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const s = admin.client.runPlan({ plan: 'slow-step', params: {}, selector: '', hosts: [], all: true, check: false, concurrency: 0, timeoutMs: 0 });
      s.on('data', (ev: JobEvent) => {
        if (ev.event?.$case === 'result') results.push(ev);
        if (ev.event?.$case === 'line') out.push(ev.event.value.line);
      });
      s.on('error', (e) => reject(fromServiceError(e)));
      s.on('end', () => resolve());
    });
    await waitFor(() => lines('begins.txt').length === 1, 20_000, 'the step started');
    const first = Number(lines('begins.txt')[0]);

    agent.proc.kill('SIGKILL');
    await agent.exited;
    assert.ok(processAlive(first), 'the step\'s shell outlived the killed agent (the fault this test is about)');
    // A journal record whose pid now belongs to an unrelated process (other start time) must not kill it.
    const bystander = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    bystanders.push(bystander.pid!);
    const jobs = join(a.state.dir, 'jobs');
    const [jobDir] = readdirSync(jobs).filter((n) => n !== 'done');
    const fake = { t: 'proc', i: 0, pgid: bystander.pid, start: startTicks(bystander.pid!) - 1, boot: bootId(), at: Date.now() };
    appendFileSync(join(jobs, jobDir!, 'journal.jsonl'), `${JSON.stringify(fake)}\n`);

    agent = startAgent();
    await done;
    assert.equal(results.length, 1);
    assert.equal(results[0]!.event?.$case === 'result' && results[0]!.event.value.status, 'succeeded', JSON.stringify(results));
    const begins = lines('begins.txt').map(Number);
    assert.equal(begins.length, 2, 'the step ran again after the restart');
    assert.deepEqual(lines('ends.txt'), [`end-${begins[1]}`], 'only the re-run finished: the old group was ended first');
    assert.ok(!processAlive(first), `the old step's shell ${first} is still running`);
    assert.ok(processAlive(bystanders[0]!), 'a process that reused a recorded pid was killed');
    assert.ok(out.includes(`[ferry] ended process group ${first} that step 1 started before the agent restarted`), out.join('\n'));
  });
});
