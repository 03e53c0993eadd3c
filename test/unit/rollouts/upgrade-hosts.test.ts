import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { AgentUpgradeOutcome } from '../../../common/src/gen/ferry/v1/session.js';
import { upgradeResult } from '../../../controller/src/rollouts/upgrade-hosts.js';
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
});
