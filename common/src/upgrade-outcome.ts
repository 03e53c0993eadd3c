/**
 * Agent self-upgrade outcomes: the names kept in the agent's upgrade state,
 * stored by the controller (agent_upgrades.outcome) and shown by the CLI,
 * and the protobuf enum the session carries. The one mapping between them.
 */
import { AgentUpgradeOutcome } from './gen/ferry/v1/session.js';

/** An outcome as kept on disk, stored and shown. */
export type UpgradeOutcome = 'committed' | 'rolled-back' | 'refused' | 'in-progress';

const CODES: Readonly<Record<UpgradeOutcome, AgentUpgradeOutcome>> = {
  committed: AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED,
  'rolled-back': AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_ROLLED_BACK,
  refused: AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_REFUSED,
  'in-progress': AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_IN_PROGRESS,
};

const NAMES = new Map<AgentUpgradeOutcome, UpgradeOutcome>(Object.entries(CODES).map(([name, code]) => [code, name as UpgradeOutcome]));

/** The session's enum value of an outcome. */
export function upgradeOutcomeCode(name: UpgradeOutcome): AgentUpgradeOutcome {
  return CODES[name];
}

/** The name of an enum value, or undefined for one this build does not know (unspecified, or from a newer peer). */
export function upgradeOutcomeName(code: AgentUpgradeOutcome): UpgradeOutcome | undefined {
  return NAMES.get(code);
}
