import { AgentUpgradeOutcome, type AgentUpgradeReport } from '../../../common/src/gen/ferry/v1/session.js';
import type { Db } from './db.js';

/** Outcome names as stored and shown (`committed`, `rolled-back`, ...). */
export type UpgradeOutcome = 'committed' | 'rolled-back' | 'refused' | 'in-progress';

const NAMES: Partial<Record<AgentUpgradeOutcome, UpgradeOutcome>> = {
  [AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_COMMITTED]: 'committed',
  [AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_ROLLED_BACK]: 'rolled-back',
  [AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_REFUSED]: 'refused',
  [AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_IN_PROGRESS]: 'in-progress',
};

/** One host's self-upgrade as the controller last heard of it. */
export interface AgentUpgradeRecord {
  agentId: string;
  upgradeId: string;
  fromVersion: string;
  toVersion: string;
  outcome: UpgradeOutcome;
  reason: string;
  /** The new version's last log lines (rolled back). */
  logTail: string[];
  errorCode: string;
  at: number;
}

interface Row {
  agent_id: string; upgrade_id: string; from_version: string; to_version: string; outcome: string;
  reason: string; log_tail: string; error_code: string; at: number;
}

/** Self-upgrade outcomes per host, as agents report them (hello and upgrade reports; idempotent per upgrade id). */
export class AgentUpgradeStore {
  /** Called after every change, so a rollout waiting on an upgrade can move on. */
  onChange?: (r: AgentUpgradeRecord) => void;

  constructor(private readonly db: Db) {}

  /** Records a report; a later report of the same upgrade replaces an earlier one, a final outcome is never replaced by in-progress. */
  async record(agentId: string, r: AgentUpgradeReport): Promise<void> {
    const outcome = NAMES[r.outcome];
    if (!outcome || !r.upgradeId) return;
    const rec: AgentUpgradeRecord = {
      agentId, upgradeId: r.upgradeId.slice(0, 100), fromVersion: r.fromVersion.slice(0, 50), toVersion: r.toVersion.slice(0, 50), outcome,
      reason: r.reason.slice(0, 2000), logTail: r.logTail.slice(-40).map((l) => l.slice(0, 500)), errorCode: r.errorCode.slice(0, 50), at: Number(r.timeMs) || Date.now(),
    };
    const changed = await this.db.tx(async (db) => {
      const old = await db.get<Row>('SELECT * FROM agent_upgrades WHERE agent_id = ? AND upgrade_id = ?', [agentId, rec.upgradeId]);
      if (old && (old.outcome === rec.outcome && Number(old.at) === rec.at)) return false;
      if (old && old.outcome !== 'in-progress' && rec.outcome === 'in-progress') return false;
      if (old) await db.run('DELETE FROM agent_upgrades WHERE agent_id = ? AND upgrade_id = ?', [agentId, rec.upgradeId]);
      await db.run(`INSERT INTO agent_upgrades (agent_id, upgrade_id, from_version, to_version, outcome, reason, log_tail, error_code, at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [agentId, rec.upgradeId, rec.fromVersion, rec.toVersion, rec.outcome, rec.reason, JSON.stringify(rec.logTail), rec.errorCode, rec.at]);
      return true;
    });
    if (changed) this.onChange?.(rec);
  }

  /** One upgrade of one host, if reported. */
  async get(agentId: string, upgradeId: string): Promise<AgentUpgradeRecord | undefined> {
    const r = await this.db.get<Row>('SELECT * FROM agent_upgrades WHERE agent_id = ? AND upgrade_id = ?', [agentId, upgradeId]);
    return r && fromRow(r);
  }

  /** Each host's latest reported upgrade, as the report it came in. */
  async latestByAgent(): Promise<Map<string, AgentUpgradeReport>> {
    const out = new Map<string, AgentUpgradeReport>();
    for (const r of (await this.db.all<Row>('SELECT * FROM agent_upgrades ORDER BY at')).map(fromRow)) out.set(r.agentId, toReport(r));
    return out;
  }

  /**
   * Every recorded upgrade whose id starts with `prefix` (a rollout's host
   * attempts are `<job id>-<agent>-<attempt>`). Ids are generated, never
   * operator text, so `prefix` holds no LIKE wildcards other than `-`.
   */
  async forUpgradePrefix(prefix: string): Promise<AgentUpgradeRecord[]> {
    if (/[%_\\]/.test(prefix)) throw new Error(`upgrade id prefix ${prefix} holds a LIKE wildcard`);
    return (await this.db.all<Row>('SELECT * FROM agent_upgrades WHERE upgrade_id LIKE ?', [`${prefix}%`])).map(fromRow);
  }

  /** A host's upgrades, newest first. */
  async forAgent(agentId: string): Promise<AgentUpgradeRecord[]> {
    return (await this.db.all<Row>('SELECT * FROM agent_upgrades WHERE agent_id = ? ORDER BY at DESC', [agentId])).map(fromRow);
  }
}

function toReport(r: AgentUpgradeRecord): AgentUpgradeReport {
  const outcome = Number(Object.entries(NAMES).find(([, n]) => n === r.outcome)?.[0] ?? 0) as AgentUpgradeOutcome;
  return { upgradeId: r.upgradeId, fromVersion: r.fromVersion, toVersion: r.toVersion, outcome, reason: r.reason, logTail: r.logTail, timeMs: r.at, errorCode: r.errorCode };
}

function fromRow(r: Row): AgentUpgradeRecord {
  return {
    agentId: r.agent_id, upgradeId: r.upgrade_id, fromVersion: r.from_version, toVersion: r.to_version, outcome: r.outcome as UpgradeOutcome,
    reason: r.reason, logTail: JSON.parse(r.log_tail) as string[], errorCode: r.error_code, at: Number(r.at),
  };
}
