// The upgrade watcher's decisions with an injected clock and a fake systemd:
// crash → rollback, window passed → rollback, commit → done, and a commit
// that lands while the rollback stops the agent wins. Files (state, the
// switched symlink) are real, in a temp dir.
import assert from 'node:assert/strict';
import { mkdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../../common/src/clock.js';
import { createLogger } from '../../../common/src/log.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { AgentState } from '../../../agent/src/state/agent-state.js';
import { commitIfOnTrial } from '../../../agent/src/upgrade/trial.js';
import type { UnitState, UpgradeHost } from '../../../agent/src/upgrade/upgrade-host.js';
import { loadUpgradeState, updateUpgradeState, UpgradePaths } from '../../../agent/src/upgrade/upgrade-state.js';
import { watchUpgrade, type WatchResult } from '../../../agent/src/upgrade/watcher.js';
import { tempDir } from '../../support/fixtures.js';

const log = createLogger({ name: 'test', level: 'silent' });
const UNIT = `ferry-agent-unittest-${process.pid}.service`;

function fakeHost(unit: () => UnitState, onSystemctl: (args: string[]) => void = () => undefined) {
  const calls: string[][] = [];
  const host: UpgradeHost = {
    unitDir: '/nonexistent-ferry-unit-dir',
    ownUnit: () => UNIT, launchPath: () => '/x', isSingleBinary: () => true,
    systemctl: async (args) => { calls.push(args); onSystemctl(args); return { exitCode: 0, output: '' }; },
    systemdRun: async () => ({ exitCode: 0, output: '' }),
    unitState: async () => unit(),
    journalTail: async () => ['line 1', 'panic: boom'],
    describeBinary: async () => ({ exitCode: 0, stdout: '{}', stderr: '' }),
  };
  return { host, calls };
}

const active: UnitState = { activeState: 'active', subState: 'running', nRestarts: 0, mainPid: 42, execMainStatus: '0' };

describe('upgrade watcher (agent/src/upgrade/watcher.ts, injected clock)', () => {
  let dir = '';
  let link = '';
  let clock: ManualClock;
  const paths = () => new UpgradePaths(dir);

  beforeEach(() => {
    dir = tempDir('ferry-upgrade-watch-');
    clock = new ManualClock();
    for (const v of ['0.0.1', FERRY_VERSION]) {
      mkdirSync(paths().versionDir(v), { recursive: true });
      writeFileSync(paths().binary(v), '#!/bin/sh\n');
    }
    link = join(dir, 'ferry-agent');
    symlinkSync(paths().binary(FERRY_VERSION), link);
    const t = clock.now();
    updateUpgradeState(dir, () => ({
      previous: '', failed: {},
      pending: { id: 'up-1', from: '0.0.1', to: FERRY_VERSION, link, fromBinary: paths().binary('0.0.1'), toBinary: paths().binary(FERRY_VERSION), unit: UNIT,
        watcherUnit: 'w.service', phase: 'switched', windowMs: 120_000, switchedAtMs: t, deadlineMs: t + 120_000 },
    }));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the watcher, advancing the clock a second at a time until it ends (at most `maxMs`). */
  async function drive(host: UpgradeHost, maxMs = 300_000): Promise<WatchResult> {
    let result: WatchResult | undefined;
    const p = watchUpgrade({ stateDir: dir, host, clock, log, restart: true }).then((r) => { result = r; });
    for (let t = 0; result === undefined && t <= maxMs; t += 1000) {
      await new Promise((r) => setImmediate(r));
      clock.advance(1000);
    }
    await p;
    return result!;
  }

  it('rolls back when the new version exits: previous binary linked back, version recorded failed, log tail kept, agent started', async () => {
    let calls = 0;
    let stoppedAt = 0;
    const { host, calls: sc } = fakeHost(() => (++calls > 3 ? { ...active, activeState: 'activating', subState: 'auto-restart', nRestarts: 1, execMainStatus: '70' } : active),
      (args) => { if (args[0] === 'stop') stoppedAt = clock.now(); });
    assert.equal(await drive(host), 'rolled-back');
    assert.equal(readlinkSync(link), paths().binary('0.0.1'));
    const d = loadUpgradeState(dir);
    assert.equal(d.pending, undefined);
    assert.match(d.failed[FERRY_VERSION]!.reason, /the new version exited \(activating\/auto-restart, exit status 70/);
    assert.equal(d.last!.outcome, 'rolled-back');
    assert.deepEqual(d.last!.logTail, ['line 1', 'panic: boom']);
    assert.deepEqual(sc.map((a) => a[0]), ['restart', 'stop', 'reset-failed', 'start']);
    // (The clock keeps moving while the test waits for file I/O; the decision is when the agent was stopped.)
    assert.ok(stoppedAt - Date.UTC(2026, 0, 1) <= 5_000, `decided within seconds, not at the window (${stoppedAt - Date.UTC(2026, 0, 1)} ms)`);
  });

  it('rolls back when the window passes without a commit, and not a second before', async () => {
    let stoppedAt = 0;
    const { host } = fakeHost(() => active, (args) => { if (args[0] === 'stop') stoppedAt = clock.now(); });
    const start = clock.now();
    assert.equal(await drive(host), 'rolled-back');
    assert.ok(stoppedAt - start >= 120_000 && stoppedAt - start <= 122_000, `rolled back after ${stoppedAt - start} ms`);
    assert.match(loadUpgradeState(dir).last!.reason, /did not reconnect to the controller and pass its self-check within 2m/);
  });

  it('ends when the new version commits (it keeps the previous version); nothing is stopped', async () => {
    const state = new AgentState(dir);
    // The agent's identity, for its self-check.
    writeFileSync(state.identityPath, JSON.stringify({ agentId: 'ag-1', addresses: ['x'], caPin: 'p', labels: {}, operatorKeys: [], enrolledAtMs: 0 }));
    for (const f of [state.keyPath, state.certPath, state.caPath]) writeFileSync(f, 'x');
    let n = 0;
    const { host, calls } = fakeHost(() => {
      if (++n === 5) assert.ok(commitIfOnTrial(state, log, host));
      return active;
    });
    assert.equal(await drive(host), 'committed');
    const d = loadUpgradeState(dir);
    assert.equal(d.previous, '0.0.1');
    assert.equal(d.last!.outcome, 'committed');
    assert.equal(readlinkSync(link), paths().binary(FERRY_VERSION));
    assert.ok(!calls.some((a) => a[0] === 'stop'));
  });

  it('a commit that lands while the rollback stops the agent wins: the agent is started again on the new version', async () => {
    const { host } = fakeHost(() => active, (args) => {
      if (args[0] !== 'stop') return;
      const d = loadUpgradeState(dir);
      const p = d.pending!;
      delete d.pending;
      updateUpgradeState(dir, () => ({ ...d, previous: p.from, last: { upgradeId: p.id, from: p.from, to: p.to, outcome: 'committed', reason: 'ok', logTail: [], errorCode: '', atMs: clock.now() } }));
    });
    assert.equal(await drive(host), 'committed');
    assert.equal(readlinkSync(link), paths().binary(FERRY_VERSION));
    assert.deepEqual(loadUpgradeState(dir).failed, {});
  });
});
