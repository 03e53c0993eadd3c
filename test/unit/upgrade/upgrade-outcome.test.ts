import assert from 'node:assert/strict';
import { AgentUpgradeOutcome } from '../../../common/src/gen/ferry/v1/session.js';
import { upgradeOutcomeCode, upgradeOutcomeName, type UpgradeOutcome } from '../../../common/src/upgrade-outcome.js';

describe('upgrade outcomes: names and the session enum (common/src/upgrade-outcome.ts)', () => {
  it('every name maps to its own enum value and back; unknown values have no name', () => {
    const names: UpgradeOutcome[] = ['committed', 'rolled-back', 'refused', 'in-progress'];
    assert.deepEqual(names.map(upgradeOutcomeCode), [
      AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED, AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_ROLLED_BACK,
      AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_REFUSED, AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_IN_PROGRESS,
    ]);
    for (const n of names) assert.equal(upgradeOutcomeName(upgradeOutcomeCode(n)), n);
    assert.equal(upgradeOutcomeName(AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_UNSPECIFIED), undefined);
    assert.equal(upgradeOutcomeName(99 as AgentUpgradeOutcome), undefined);
  });
});
