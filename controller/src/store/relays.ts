import type { RelayStatus } from '../../../common/src/gen/ferry/v1/session.js';
import type { Db } from './db.js';

/** A site relay as stored (docs/relays.md): an enrolled agent that serves chunks to the hosts `serves` selects. */
export interface RelayRecord {
  agentId: string;
  /** Label selector of the hosts it serves. */
  serves: string;
  cacheBytes: number;
  /** host:port it listens on (port 0: any). */
  listen: string;
  /** host:port agents dial, when not derived from the listen address; ''. */
  advertise: string;
  /** host:port of its HTTPS registry and files listener; '' when it serves none. */
  registryListen: string;
  enabledBy: string;
  enabledAt: number;
  /** The address the relay reported it serves on; '' until it did (agents are not sent a relay before that). */
  address: string;
  /** Its last status report, or null. */
  status: RelayStatus | null;
  statusAt: number | null;
}

interface RelayRow {
  agent_id: string; serves: string; cache_bytes: number | string; listen: string; advertise: string; enabled_by: string;
  enabled_at: number | string; address: string; registry_listen?: string | null; status: string; status_at: number | string | null;
}

function fromRow(r: RelayRow): RelayRecord {
  return {
    agentId: r.agent_id, serves: r.serves, cacheBytes: Number(r.cache_bytes), listen: r.listen, advertise: r.advertise, registryListen: r.registry_listen ?? '',
    enabledBy: r.enabled_by, enabledAt: Number(r.enabled_at), address: r.address,
    status: r.status ? (JSON.parse(r.status) as RelayStatus) : null, statusAt: r.status_at === null ? null : Number(r.status_at),
  };
}

/** The `relays` table. Enabling again replaces the settings (and keeps nothing of the last report's address). */
export class RelayStore {
  constructor(private readonly db: Db) {}

  async list(): Promise<RelayRecord[]> {
    return (await this.db.all<RelayRow>('SELECT * FROM relays ORDER BY enabled_at, agent_id')).map(fromRow);
  }

  async get(agentId: string): Promise<RelayRecord | undefined> {
    const r = await this.db.get<RelayRow>('SELECT * FROM relays WHERE agent_id = ?', [agentId]);
    return r && fromRow(r);
  }

  async enable(r: Pick<RelayRecord, 'agentId' | 'serves' | 'cacheBytes' | 'listen' | 'advertise' | 'enabledBy' | 'enabledAt'> & { registryListen?: string }): Promise<RelayRecord> {
    await this.db.tx(async (t) => {
      await t.run('DELETE FROM relays WHERE agent_id = ?', [r.agentId]);
      await t.run(`INSERT INTO relays (agent_id, serves, cache_bytes, listen, advertise, enabled_by, enabled_at, address, status, status_at, registry_listen)
        VALUES (?, ?, ?, ?, ?, ?, ?, '', '', NULL, ?)`, [r.agentId, r.serves, r.cacheBytes, r.listen, r.advertise, r.enabledBy, r.enabledAt, r.registryListen ?? '']);
    });
    return (await this.get(r.agentId))!;
  }

  /** Returns false when the agent was not a relay. */
  async disable(agentId: string): Promise<boolean> {
    return (await this.db.run('DELETE FROM relays WHERE agent_id = ?', [agentId])).changes > 0;
  }

  /** Records a report; returns whether the address agents dial changed. */
  async report(agentId: string, status: RelayStatus, at: number): Promise<boolean> {
    const before = await this.get(agentId);
    if (!before) return false;
    await this.db.run('UPDATE relays SET address = ?, status = ?, status_at = ? WHERE agent_id = ?', [status.address, JSON.stringify(status), at, agentId]);
    return before.address !== status.address;
  }
}
