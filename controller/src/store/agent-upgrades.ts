import type { AgentUpgradeReport } from '../../../common/src/gen/ferry/v1/session.js';
import { upgradeOutcomeCode, upgradeOutcomeName, type UpgradeOutcome } from '../../../common/src/upgrade-outcome.js';
import type { Db } from './db.js';

export type { UpgradeOutcome };

/** The job_events kind of an upgrade report (a rollout host's log: `ferry rollout logs`). */
export const UPGRADE_EVENT = 'upgrade';

/** The body of an UPGRADE_EVENT row. */
export type UpgradeEventBody = Pick<AgentUpgradeRecord, 'outcome' | 'fromVersion' | 'toVersion' | 'reason' | 'logTail' | 'errorCode'>;

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

/**
 * Self-upgrade outcomes per host, as agents report them (hello and upgrade
 * reports; idempotent per upgrade id). Each change is also appended to
 * job_events under the upgrade id, which for a rollout's host is its host
 * job id: that is the host's log (staged, switched, committed or rolled back
 * with the new version's last lines), read like a plan job's.
 */
export class AgentUpgradeStore {
  /** Called after every change, so a rollout waiting on an upgrade can move on. */
  onChange?: (r: AgentUpgradeRecord) => void;

  constructor(private readonly db: Db) {}

  /** Records still running, per agent: one agent's reports are recorded one after the other. */
  private readonly queues = new Map<string, Promise<void>>();

  /**
   * Records a report; a later report of the same upgrade replaces an earlier
   * one, a final outcome is never replaced by in-progress. One agent's
   * reports are recorded in the order they came, one at a time: a session's
   * messages are handled concurrently, and two transactions of one upgrade
   * at once would both read the same row and log position, so one would
   * fail on PostgreSQL (a "staged" report and a refusal milliseconds later).
   */
  record(agentId: string, r: AgentUpgradeReport): Promise<void> {
    const next = (this.queues.get(agentId) ?? Promise.resolve()).catch(() => undefined).then(() => this.recordNow(agentId, r));
    this.queues.set(agentId, next);
    const forget = () => { if (this.queues.get(agentId) === next) this.queues.delete(agentId); };
    next.then(forget, forget);
    return next;
  }

  private async recordNow(agentId: string, r: AgentUpgradeReport): Promise<void> {
    const outcome = upgradeOutcomeName(r.outcome);
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
      const last = await db.get<{ seq: number | string | null }>('SELECT MAX(seq) AS seq FROM job_events WHERE host_job_id = ?', [rec.upgradeId]);
      const body: UpgradeEventBody = { outcome: rec.outcome, fromVersion: rec.fromVersion, toVersion: rec.toVersion, reason: rec.reason, logTail: rec.logTail, errorCode: rec.errorCode };
      await db.run('INSERT INTO job_events (host_job_id, seq, kind, body, at) VALUES (?, ?, ?, ?, ?)',
        [rec.upgradeId, Number(last?.seq ?? 0) + 1, UPGRADE_EVENT, JSON.stringify(body), rec.at]);
      return true;
    });
    if (changed) this.onChange?.(rec);
  }

  /** One upgrade of one host, if reported. */
  async get(agentId: string, upgradeId: string): Promise<AgentUpgradeRecord | undefined> {
    const r = await this.db.get<Row>('SELECT * FROM agent_upgrades WHERE agent_id = ? AND upgrade_id = ?', [agentId, upgradeId]);
    return r && fromRow(r);
  }

  /** Each host's latest reported upgrade, as the report it came in (one row per host, read by the database). */
  async latestByAgent(): Promise<Map<string, AgentUpgradeReport>> {
    const rows = await this.db.all<Row>(`SELECT u.* FROM agent_upgrades u
      WHERE u.at = (SELECT MAX(v.at) FROM agent_upgrades v WHERE v.agent_id = u.agent_id) ORDER BY u.agent_id, u.upgrade_id`);
    const out = new Map<string, AgentUpgradeReport>();
    // Two reports of one host at the same millisecond: the last by upgrade id, as before.
    for (const r of rows.map(fromRow)) out.set(r.agentId, toReport(r));
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
  return { upgradeId: r.upgradeId, fromVersion: r.fromVersion, toVersion: r.toVersion, outcome: upgradeOutcomeCode(r.outcome), reason: r.reason, logTail: r.logTail, timeMs: r.at, errorCode: r.errorCode };
}

function fromRow(r: Row): AgentUpgradeRecord {
  return {
    agentId: r.agent_id, upgradeId: r.upgrade_id, fromVersion: r.from_version, toVersion: r.to_version, outcome: r.outcome as UpgradeOutcome,
    reason: r.reason, logTail: JSON.parse(r.log_tail) as string[], errorCode: r.error_code, at: Number(r.at),
  };
}
