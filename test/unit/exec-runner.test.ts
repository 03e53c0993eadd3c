import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExecRunner, type ExecJob } from '../../agent/src/exec/exec-runner.js';
import { JobStore } from '../../agent/src/jobs/job-store.js';
import { Outbox } from '../../agent/src/session/outbox.js';
import type { AgentMessage, JobResult } from '../../common/src/gen/ferry/v1/session.js';
import { silentLogger } from '../../common/src/log.js';
import { tempDir, waitFor } from '../support/fixtures.js';

/** An agent process's exec runner on `dir`, with what it sends. */
function agentProcess(dir: string): { runner: ExecRunner; sent: AgentMessage[] } {
  const outbox = new Outbox();
  const sent: AgentMessage[] = [];
  outbox.attach((m) => sent.push(m), []);
  return { runner: new ExecRunner(outbox, silentLogger(), new JobStore(dir)), sent };
}

const results = (sent: AgentMessage[]): JobResult[] => sent.flatMap((m) => (m.msg?.$case === 'jobResult' ? [m.msg.value] : []));

describe('exec runner: job ids journaled across agent restarts', () => {
  let dir: string;
  beforeEach(() => { dir = tempDir('ferry-exec-runner-'); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('journals the id before the command runs; a start sent again to the same process is ignored, to a restarted one refused with a lost result (seq 1)', async () => {
    const out = join(dir, 'ran');
    const job: ExecJob = { jobId: 'j-x-1', argv: ['sh', '-c', `echo once >> ${out}`], timeoutMs: 10_000, env: {}, cwd: '' };
    const first = agentProcess(dir);
    first.runner.start(job);
    assert.ok(existsSync(join(dir, 'jobs', 'done', job.jobId)), 'journaled as it starts');
    await waitFor(() => results(first.sent).length === 1, 5000, 'first run finished');
    first.runner.start(job);
    assert.equal(results(first.sent).length, 1, 'the same process ignores a duplicate start');

    const restarted = agentProcess(dir);
    restarted.runner.start(job);
    const [r] = results(restarted.sent);
    assert.deepEqual({ seq: r?.seq, status: r?.status }, { seq: 1, status: 'lost' });
    assert.match(r!.message, /restarted after it took the command on; it is not run again/);
    assert.deepEqual(restarted.sent.filter((m) => m.msg?.$case === 'output'), [], 'nothing ran');
    assert.deepEqual(restarted.runner.jobIds(), []);
  });

  it('does not run a command whose id it cannot journal (it could not refuse it after a restart)', () => {
    const { runner, sent } = agentProcess(dir);
    // A file where the journal's directory should be: no marker can be written, also as root.
    rmSync(join(dir, 'jobs', 'done'), { recursive: true });
    writeFileSync(join(dir, 'jobs', 'done'), '');
    runner.start({ jobId: 'j-x-2', argv: ['true'], timeoutMs: 10_000, env: {}, cwd: '' });
    const [r] = results(sent);
    assert.equal(r?.status, 'failed');
    assert.match(r!.message, /could not journal the job id/);
    assert.deepEqual(runner.jobIds(), []);
  });
});
