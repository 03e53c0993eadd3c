import assert from 'node:assert/strict';
import type { RolloutHost, RolloutSnapshot } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { eventLine, hostDetail, renderFrame, stateText } from '../../../controller/src/cli/cmd-rollout-render.js';
import { barLine } from '../../../common/src/progress.js';
import { fit } from '../../../common/src/table.js';
import { outcomeCode } from '../../../controller/src/cli/cmd-rollout-watch.js';
import { specFromFlags } from '../../../controller/src/cli/cmd-rollout.js';
import { parseRolloutSpec } from '../../../controller/src/rollouts/spec.js';

const host = (over: Partial<RolloutHost>): RolloutHost => ({
  agentId: 'ag-1', hostname: 'edge-1', wave: 0, state: 'pending', attempt: 1, hostJobId: '', stepIndex: 0, stepCount: 0, stepId: '',
  message: '', connected: true, startedAtMs: 0, finishedAtMs: 0, lastLines: [], ...over,
});

const SNAP: RolloutSnapshot = {
  info: {
    id: 'ro-1', name: 'edge', plan: 'kubeedge-edge', planId: 'p', state: 'running', paused: false, pauseReason: '', currentWave: 1, waveCount: 3, hosts: 12,
    counts: [{ state: 'succeeded', count: 3 }, { state: 'failed', count: 1 }, { state: 'running', count: 2 }, { state: 'pending', count: 6 }],
    createdAtMs: 0, createdBy: 'local', updatedAtMs: 0, finishedAtMs: 0, gateUntilMs: 0, strategy: 'waves 1,50%,100%', kind: 'plan', agentVersion: '',
  },
  waves: [
    { index: 0, size: 1, planned: '1', state: 'done', counts: [{ state: 'succeeded', count: 1 }], startedAtMs: 1000, finishedAtMs: 3000 },
    { index: 1, size: 5, planned: '50%', state: 'running', counts: [{ state: 'succeeded', count: 2 }, { state: 'failed', count: 1 }, { state: 'running', count: 2 }], startedAtMs: 3000, finishedAtMs: 0 },
    { index: 2, size: 6, planned: '100%', state: 'pending', counts: [{ state: 'pending', count: 6 }], startedAtMs: 0, finishedAtMs: 0 },
  ],
  hosts: [
    host({ hostname: 'edge-7', state: 'failed', stepIndex: 1, stepCount: 3, stepId: 'boom', message: 'step boom: exit status 3', lastLines: ['a', 'b', 'boom'] }),
    host({ hostname: 'edge-8', state: 'running', stepIndex: 2, stepCount: 7, stepId: 'restart-edgecore' }),
    host({ hostname: 'edge-9', state: 'running', stepIndex: 0, stepCount: 7, stepId: 'import', connected: false }),
  ],
  etaMs: 90_000, etaNote: '', atMs: 10_000,
};

describe('rollout watch rendering', () => {
  it('draws waves with bars and counts, failing hosts with the failing step and last lines, running steps, ETA', () => {
    const text = renderFrame(SNAP, 10_000).join('\n');
    assert.match(text, /^rollout ro-1 edge \(plan kubeedge-edge\)\n  running, wave 2\/3 · ETA 1m30s\n/);
    assert.match(text, /wave 1  \[#{30}\] 1\/1 +done +1 succeeded ran 2\.0s\n/);
    assert.match(text, /wave 2  \[#{18}\.{12}\] 3\/5 +running 2 running · 2 succeeded · 1 failed ran 7\.0s/);
    assert.match(text, /wave 3  \[\.{30}\] 0\/6 +pending 6 pending/);
    assert.match(text, /failing \(1\):\n  edge-7: at step 2\/3 boom: step boom: exit status 3\n    \| a\n    \| b\n    \| boom/);
    assert.match(text, /edge-8: step 3\/7 restart-edgecore\n/);
    assert.match(text, /edge-9: step 1\/7 import \(agent offline: its result arrives when it reconnects\)/);
  });
  it('says why it is stopped', () => {
    assert.equal(stateText({ ...SNAP.info!, paused: true, pauseReason: 'error budget exceeded' }), 'PAUSED, wave 2/3 — error budget exceeded');
    assert.match(stateText({ ...SNAP.info!, state: 'awaiting-approval' }), /waiting for approval of wave 3\/3/);
    assert.equal(hostDetail(host({ state: 'pending', message: 'waiting: rollout ro-2 is running on this host' })), 'waiting: rollout ro-2 is running on this host');
  });
  it('prints events as plain lines', () => {
    assert.equal(eventLine({ rolloutId: 'r', seq: 1, atMs: Date.UTC(2026, 0, 1, 12, 0, 5), kind: 'host', agentId: 'a', hostname: 'edge-7', state: 'failed', message: 'step boom' }), '12:00:05 edge-7: failed — step boom');
    assert.equal(eventLine({ rolloutId: 'r', seq: 2, atMs: Date.UTC(2026, 0, 1, 12, 0, 6), kind: 'paused', agentId: '', hostname: '', state: 'running', message: 'x' }), '12:00:06 paused: x');
  });
  it('exits 0 only for a succeeded rollout', () => {
    assert.equal(outcomeCode('succeeded'), 0);
    assert.equal(outcomeCode('failed'), 1);
    assert.equal(outcomeCode('aborted'), 1);
  });
  it('turns flags into the same spec a file would give', () => {
    const text = specFromFlags({ plan: 'p', selector: 'role=edge', host: ['c1'], exclude: ['x'], param: ['a=1'], waves: '1,10%,100%', 'max-concurrency': '25%',
      'error-budget': '2', 'wave-error-budget': '10%', 'on-failure': 'abort', wait: '30s', 'offline-timeout': '1m', offline: 'skip', prefetch: true } as Parameters<typeof specFromFlags>[0]);
    const { spec, problems } = parseRolloutSpec(text, '(flags)');
    assert.deepEqual(problems, []);
    assert.deepEqual(spec!.strategy.waves, [{ count: 1 }, { percent: 10 }, { percent: 100 }]);
    assert.deepEqual(spec!.strategy.errorBudget, { perWave: { percent: 10 }, total: { count: 2 } });
    assert.deepEqual(spec!.targets, { selector: 'role=edge', hosts: ['c1'], exclude: ['x'] });
    assert.deepEqual(spec!.params, { a: '1' });
    assert.equal(spec!.strategy.onFailure, 'abort');
  });

  it('at 80 columns: no row wraps, and the command a person must type has a row of its own', () => {
    const waiting: RolloutSnapshot = { ...SNAP, info: { ...SNAP.info!, state: 'awaiting-approval', name: 'kubeedge-edge-upgrade-to-1-22-for-every-plant-in-the-northern-region' } };
    const rows = renderFrame(waiting, 10_000, true, 79).map((l) => fit(l, 79));
    for (const r of rows) assert.ok(r.length <= 79, `wraps at 80 columns: ${r}`);
    assert.ok(rows.includes('  next: ferry rollout approve ro-1'), rows.join('\n'));
    assert.match(rows.join('\n'), /wave 1  \[#{12}\] 1\/1/);
    const paused: RolloutSnapshot = { ...SNAP, info: { ...SNAP.info!, paused: true, pauseReason: 'error budget exceeded: 3 failed of 12, more than the 2 allowed in wave 2' } };
    assert.match(renderFrame(paused, 10_000, true, 79).join('\n'), /^  next: ferry rollout resume ro-1/m);
  });

  it('at 24 rows: the header, the command to type, waves and counts always show; host lists shrink to the room left', () => {
    const many = Array.from({ length: 30 }, (_, k) => host({ hostname: `edge-${k}`, state: 'failed', stepIndex: 1, stepCount: 2, stepId: 'restart', message: 'exit 3', lastLines: ['one', 'two', 'three'] }));
    const snap: RolloutSnapshot = { ...SNAP, info: { ...SNAP.info!, paused: true, pauseReason: 'error budget exceeded' }, hosts: [...many, host({ hostname: 'edge-r', state: 'running' })] };
    const rows = renderFrame(snap, 10_000, true, 79, 23);
    assert.ok(rows.length <= 23, `${rows.length} rows:\n${rows.join('\n')}`);
    assert.match(rows[0]!, /^rollout ro-1 edge/);
    assert.equal(rows[2], '  next: ferry rollout resume ro-1   (or: ferry rollout abort ro-1)');
    assert.ok(rows.some((r) => /^wave 3 /.test(r)) && rows.some((r) => r.startsWith('hosts: ')));
    assert.ok(rows.some((r) => /… and \d+ more \(ferry rollout show ro-1\)/.test(r)));
  });

  it('progress bars fit any terminal width and always show the percentage', () => {
    for (const cols of [20, 40, 60, 80, 120, 200]) {
      const line = barLine('push kubeedge-edge-offline-package-for-every-plant:1.22.0-rc1', 42, '512.0 MiB/1.0 GiB 98.2 MiB/s ETA 5.3s', cols);
      assert.ok(line.length <= Math.max(20, cols - 1), `${cols} columns: ${line.length} > ${cols - 1}: ${line}`);
      assert.match(line, / 42%/);
    }
  });
});
