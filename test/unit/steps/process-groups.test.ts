/**
 * Process groups of steps and guards: a guard that times out takes its
 * children with it, the runner tells the journal about every group, and
 * ending a recorded group never touches a process that reused its pid.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootId, endGroup, type GroupRecord } from '../../../common/src/proc/process-group.js';
import { MAX_LINE_BYTES, runProcess } from '../../../common/src/proc/run-process.js';
import { runStep, type StepRunDeps } from '../../../agent/src/jobs/step-attempts.js';
import type { StepExecutor } from '../../../agent/src/steps/step.js';
import type { StepSchema } from '../../../common/src/plan/step-schema.js';
import type { PlanStep } from '../../../common/src/plan/types.js';
import { processAlive, startTicks } from '../../support/procfs.js';
import { makeContext } from './step-context.js';

/** A step type that only counts its runs. */
function countingDeps(): StepRunDeps & { runs: number } {
  const deps = {
    runs: 0,
    executors: new Map<string, StepExecutor<unknown>>(),
    schemas: new Map<string, StepSchema<unknown>>([['count', { type: 'count', summary: 'counts', parse: () => ({ args: {}, problems: [] }) }]]),
  };
  deps.executors.set('count', { type: 'count', run: async () => { deps.runs++; return { status: 'changed', message: 'counted' }; } });
  return deps;
}

function step(over: Partial<PlanStep>): PlanStep {
  return { id: 's', type: 'count', args: {}, timeoutMs: 60_000, retries: 0, retryDelayMs: 0, guards: {}, pos: { file: 'p.yaml', line: 1, col: 1 }, ...over };
}

describe('process groups of steps and guards', () => {
  it('a guard that times out leaves no process behind (its background sleep goes with it)', async () => {
    const t = makeContext();
    try {
      const pidFile = join(t.root, 'bg.pid');
      const deps = countingDeps();
      const scope = { plan: { name: 'p', description: '', params: [], bundles: [], steps: [] }, params: {}, bundleDirs: {}, facts: {}, labels: {} };
      const guard = ['sh', '-c', `sleep 300 & echo $! > ${pidFile}; wait`];
      const out = await runStep(step({ timeoutMs: 700, guards: { unless: guard } }), t.ctx, new AbortController().signal, deps, scope);
      assert.equal(out.status, 'failed');
      assert.equal(out.errorCode, 'STEP_GUARD');
      assert.match(out.message, /unless guard `sh -c .*` timed out after 700ms; its process group was stopped/);
      assert.equal(deps.runs, 0, 'a guard without an answer must not let the step run');
      assert.ok(existsSync(pidFile));
      const bg = Number(readFileSync(pidFile, 'utf8'));
      assert.ok(!processAlive(bg), `the guard's background sleep ${bg} survived the timeout`);
    } finally {
      t.cleanup();
    }
  });

  it('reports each group to the tracker before output is awaited, and when it is over', async () => {
    const events: string[] = [];
    let recorded: GroupRecord | undefined;
    const r = await runProcess({
      argv: ['sh', '-c', 'echo hi'],
      onLine: (l) => events.push(`line ${l}`),
      track: {
        started: (g) => { recorded = g; events.push('started'); },
        ended: (g) => { assert.deepEqual(g, recorded); events.push('ended'); },
      },
    });
    assert.equal(r.exitCode, 0);
    assert.deepEqual(events, ['started', 'line hi', 'ended']);
    assert.equal(recorded!.boot, bootId());
    assert.ok(recorded!.start > 0);
  });

  it('leaves a process alone when its pid was reused (start time differs), and ends the group when it is ours', async () => {
    const child = spawn('sh', ['-c', 'sleep 60 & wait'], { detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const pid = child.pid!;
    try {
      const real: GroupRecord = { pgid: pid, start: startTicks(pid), boot: bootId() };
      assert.equal(await endGroup({ ...real, start: real.start + 1 }, { graceMs: 100 }), 'reused');
      assert.ok(processAlive(pid), 'a process that reused a recorded pid was signalled');
      assert.equal(await endGroup({ ...real, boot: 'another-boot' }), 'gone', 'a group from another boot cannot be running');
      assert.ok(processAlive(pid));
      assert.equal(await endGroup(real, { graceMs: 100 }), 'ended');
      await exited;
      assert.equal(await endGroup(real), 'gone');
    } finally {
      try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });

  it('one runner: input, plain locale, overlong lines cut with a marker, capture capped, start errors', async () => {
    const lines: string[] = [];
    const r = await runProcess({
      argv: ['sh', '-c', `cat; echo "$LC_ALL"; head -c ${MAX_LINE_BYTES + 10} /dev/zero | tr '\\0' x; echo; echo after`],
      input: 'from stdin\n', plainLocale: true, captureBytes: 100, onLine: (l) => lines.push(l),
    });
    assert.equal(r.exitCode, 0);
    assert.deepEqual(lines.slice(0, 2), ['from stdin', 'C']);
    assert.equal(lines[2], `${'x'.repeat(MAX_LINE_BYTES)}… [ferry: line cut at ${MAX_LINE_BYTES} bytes]`);
    assert.equal(lines[3], 'after');
    assert.equal(lines.length, 4);
    assert.equal(r.stdout.length, 100);
    assert.ok(r.truncated);
    const missing = await runProcess({ argv: ['ferry-no-such-program'] });
    assert.equal(missing.startError, 'command not found: ferry-no-such-program');
    assert.equal(missing.exitCode, undefined);
  });
});
