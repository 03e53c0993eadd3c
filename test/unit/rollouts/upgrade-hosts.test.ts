import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { AgentUpgradeOutcome } from '../../../common/src/gen/ferry/v1/session.js';
import { upgradeLogLines, upgradeResult } from '../../../controller/src/rollouts/upgrade-hosts.js';
import { RolloutStore } from '../../../controller/src/rollouts/rollout-store.js';
import { AgentUpgradeStore } from '../../../controller/src/store/agent-upgrades.js';
import { SqliteDb } from '../../../controller/src/store/db.js';
import { migrateStore } from '../../../controller/src/store/migrate.js';
import { tempDir } from '../../support/fixtures.js';

const report = (upgradeId: string, outcome: AgentUpgradeOutcome, over = {}) => ({
  upgradeId, fromVersion: '0.1.0', toVersion: '0.1.1', outcome, reason: 'r', logTail: [], timeMs: 1000, errorCode: '', ...over,
});

describe('agent-upgrade rollouts: reading host outcomes (controller/src/rollouts/upgrade-hosts.ts)', () => {
  it('committed succeeds; rolled-back and refused fail with the reason and the last log lines; in-progress waits', () => {
    const base = { agentId: 'a', upgradeId: 'u', fromVersion: '0.1.0', toVersion: '0.1.1', reason: 'the new version exited (status 70)', errorCode: 'UPGRADE_ROLLED_BACK', at: 1 };
    assert.equal(upgradeResult(undefined), undefined);
    assert.equal(upgradeResult({ ...base, outcome: 'in-progress', logTail: [] }), undefined);
    assert.deepEqual(upgradeResult({ ...base, outcome: 'committed', reason: 'reconnected', logTail: [] }), { status: 'succeeded', message: '0.1.0 → 0.1.1 committed: reconnected' });
    const rb = upgradeResult({ ...base, outcome: 'rolled-back', logTail: ['starting', 'panic: boom'] })!;
    assert.equal(rb.status, 'failed');
    assert.equal(rb.message, 'rolled-back (UPGRADE_ROLLED_BACK): the new version exited (status 70); last log lines of 0.1.1: starting ⏎ panic: boom');
    assert.equal(upgradeResult({ ...base, outcome: 'refused', errorCode: 'UPGRADE_REFUSED', logTail: [] })!.status, 'failed');
  });

  it('finds a rollout\'s upgrades by id prefix only, and a final outcome is never replaced by in-progress', async () => {
    const dir = tempDir('ferry-upg-');
    const db = new SqliteDb(join(dir, 'ferry.db'));
    try {
      await migrateStore(db);
      const s = new AgentUpgradeStore(db);
      await s.record('a1', report('j-ro-1234abcd-a1-1', AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED));
      await s.record('a2', report('j-ro-1234abcd-a2-1', AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_IN_PROGRESS));
      await s.record('a3', report('j-ro-99999999-a3-1', AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED));
      await s.record('a1', report('j-ro-1234abcd-a1-1', AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_IN_PROGRESS, { timeMs: 2000 }));
      const got = await s.forUpgradePrefix('j-ro-1234abcd-');
      assert.deepEqual(got.map((r) => `${r.agentId}:${r.outcome}`).sort(), ['a1:committed', 'a2:in-progress']);
      await assert.rejects(s.forUpgradePrefix('j-ro-%'), /LIKE wildcard/);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('each change of a report is a line of the host\'s log (job_events under the upgrade id); a resent report adds none; latestByAgent is each host\'s newest', async () => {
    const dir = tempDir('ferry-upg-');
    const db = new SqliteDb(join(dir, 'ferry.db'));
    try {
      await migrateStore(db);
      const s = new AgentUpgradeStore(db);
      const id = 'j-ro-1234abcd-a1-1';
      const IN = AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_IN_PROGRESS;
      await s.record('a1', report(id, IN, { reason: 'staging the release', timeMs: 1000 }));
      await s.record('a1', report(id, IN, { reason: 'switched to 0.1.1', timeMs: 2000 }));
      await s.record('a1', report(id, AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_ROLLED_BACK, { reason: 'the new version exited', errorCode: 'UPGRADE_ROLLED_BACK', logTail: ['starting', 'panic: boom'], timeMs: 3000 }));
      // The next hello resends the last report: nothing new.
      await s.record('a1', report(id, AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_ROLLED_BACK, { reason: 'the new version exited', errorCode: 'UPGRADE_ROLLED_BACK', logTail: ['starting', 'panic: boom'], timeMs: 3000 }));
      const events = await new RolloutStore(db).jobEvents(id);
      assert.deepEqual(events.map((e) => [e.seq, e.kind, e.at]), [[1, 'upgrade', 1000], [2, 'upgrade', 2000], [3, 'upgrade', 3000]]);
      assert.deepEqual(events.flatMap((e) => upgradeLogLines(e.body)).map((l) => `${l.kind}: ${l.text}`), [
        'upgrade: upgrade 0.1.0 → 0.1.1: staging the release',
        'upgrade: upgrade 0.1.0 → 0.1.1: switched to 0.1.1',
        'upgrade: upgrade 0.1.0 → 0.1.1 rolled-back (UPGRADE_ROLLED_BACK): the new version exited',
        'upgrade: last log lines of 0.1.1:',
        'output: starting',
        'output: panic: boom',
      ]);

      await s.record('a1', report('j-ro-5678abcd-a1-1', AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED, { timeMs: 5000 }));
      await s.record('a2', report('j-ro-5678abcd-a2-1', AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_REFUSED, { timeMs: 4000 }));
      const latest = await s.latestByAgent();
      assert.deepEqual([...latest].map(([a, r]) => `${a}:${r.upgradeId}:${r.outcome}`).sort(), [
        `a1:j-ro-5678abcd-a1-1:${AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED}`, `a2:j-ro-5678abcd-a2-1:${AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_REFUSED}`,
      ]);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
