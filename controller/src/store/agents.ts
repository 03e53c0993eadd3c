import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { HostFacts } from '../../../common/src/gen/ferry/v1/common.js';
import { platformArch } from '../../../common/src/arch.js';
import { labelValue, type Labels } from '../../../common/src/labels.js';
import type { Db } from './db.js';

/** An enrolled agent as stored. */
export interface AgentRecord {
  id: string;
  hostname: string;
  labels: Labels;
  facts: HostFacts;
  agentVersion: string;
  /** Session protocol of the last hello (0: unknown, an agent older than the field). */
  protocolVersion: number;
  /** The version the host keeps to roll back to ('' = none). */
  previousVersion: string;
  tokenId: string | null;
  enrolledAt: number;
  lastSeenAt: number | null;
  revokedAt: number | null;
  certSerial: string;
  certNotAfter: number;
  /** sha256 of the host key (SPKI DER), hex; null for agents enrolled before it was recorded. */
  keyFingerprint: string | null;
  /** When an operator last allowed this agent to re-authenticate past the window (`ferry agents allow-reauth`). */
  reauthAllowedAt: number | null;
}

interface AgentRow {
  id: string; hostname: string; labels: string; facts: string; agent_version: string; token_id: string | null;
  enrolled_at: number; last_seen_at: number | null; revoked_at: number | null; cert_serial: string; cert_not_after: number;
  key_fingerprint: string | null; reauth_allowed_at?: number | null;
  protocol_version?: number; previous_version?: string;
}

function fromRow(r: AgentRow): AgentRecord {
  return {
    id: r.id, hostname: r.hostname, labels: JSON.parse(r.labels) as Labels, facts: JSON.parse(r.facts) as HostFacts,
    agentVersion: r.agent_version, protocolVersion: Number(r.protocol_version ?? 0), previousVersion: r.previous_version ?? '', tokenId: r.token_id, enrolledAt: Number(r.enrolled_at),
    lastSeenAt: r.last_seen_at === null ? null : Number(r.last_seen_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    certSerial: r.cert_serial, certNotAfter: Number(r.cert_not_after), keyFingerprint: r.key_fingerprint ?? null,
    reauthAllowedAt: r.reauth_allowed_at == null ? null : Number(r.reauth_allowed_at),
  };
}

/** Enrolled agents: identity, labels, facts and certificate bookkeeping. */
export class AgentStore {
  constructor(private readonly db: Db) {}

  async insert(db: Db, a: Omit<AgentRecord, 'lastSeenAt' | 'revokedAt' | 'reauthAllowedAt' | 'protocolVersion' | 'previousVersion'>): Promise<void> {
    await db.run(
      `INSERT INTO agents (id, hostname, labels, facts, agent_version, token_id, enrolled_at, cert_serial, cert_not_after, key_fingerprint)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [a.id, a.hostname, JSON.stringify(a.labels), JSON.stringify(a.facts), a.agentVersion, a.tokenId, a.enrolledAt, a.certSerial, a.certNotAfter, a.keyFingerprint],
    );
  }

  /** The agent enrolled with this host key, if any. */
  async byKey(fingerprint: string, db: Db = this.db): Promise<AgentRecord | undefined> {
    const r = await db.get<AgentRow>('SELECT * FROM agents WHERE key_fingerprint = ?', [fingerprint]);
    return r && fromRow(r);
  }

  async get(id: string, db: Db = this.db): Promise<AgentRecord | undefined> {
    const r = await db.get<AgentRow>('SELECT * FROM agents WHERE id = ?', [id]);
    return r && fromRow(r);
  }

  async require(id: string): Promise<AgentRecord> {
    const a = await this.get(id);
    if (!a) throw new FerryError(ErrorCode.NotFound, `no agent with id ${id}`, 'list agents with `ferry agents ls`');
    return a;
  }

  async list(includeRevoked = false): Promise<AgentRecord[]> {
    const sql = includeRevoked
      ? 'SELECT * FROM agents ORDER BY hostname, id'
      : 'SELECT * FROM agents WHERE revoked_at IS NULL ORDER BY hostname, id';
    return (await this.db.all<AgentRow>(sql)).map(fromRow);
  }

  async setLabels(id: string, labels: Labels): Promise<void> {
    await this.db.run('UPDATE agents SET labels = ? WHERE id = ?', [JSON.stringify(labels), id]);
  }

  /**
   * Records a contact. With a hello's facts and versions it also refreshes
   * the facts, the versions and the `ferry/arch` label (an agent enrolled
   * before the label was derived from its facts, or one that reported Node's
   * arch names, gets the image-platform name).
   */
  async seen(id: string, at: number, facts?: HostFacts, versions?: { agentVersion: string; protocolVersion: number; previousVersion: string }): Promise<void> {
    if (facts && versions) {
      const f = { ...facts, arch: platformArch(facts.arch) };
      await this.db.tx(async (db) => {
        const r = await db.get<{ labels: string }>('SELECT labels FROM agents WHERE id = ?', [id]);
        const labels = r ? JSON.parse(r.labels) as Labels : {};
        if (f.arch) labels['ferry/arch'] = labelValue(f.arch);
        await db.run('UPDATE agents SET last_seen_at = ?, facts = ?, agent_version = ?, protocol_version = ?, previous_version = ?, hostname = ?, labels = ? WHERE id = ?',
          [at, JSON.stringify(f), versions.agentVersion, versions.protocolVersion, versions.previousVersion, f.hostname, JSON.stringify(labels), id]);
      });
    } else {
      await this.db.run('UPDATE agents SET last_seen_at = ? WHERE id = ?', [at, id]);
    }
  }

  /** The version a host keeps for rollback, from an upgrade report sent after the session's hello. */
  async setPreviousVersion(id: string, version: string): Promise<void> {
    await this.db.run('UPDATE agents SET previous_version = ? WHERE id = ?', [version, id]);
  }

  async setCert(id: string, serial: string, notAfter: number): Promise<void> {
    await this.db.run('UPDATE agents SET cert_serial = ?, cert_not_after = ? WHERE id = ?', [serial, notAfter, id]);
  }

  /** Lets an agent unseen for longer than the re-authentication window get a certificate once more. */
  async allowReauth(id: string, at: number): Promise<AgentRecord> {
    await this.require(id);
    await this.db.run('UPDATE agents SET reauth_allowed_at = ? WHERE id = ?', [at, id]);
    return this.require(id);
  }

  /** Forgets a revoked agent and what it held; jobs and rollouts keep their history by id and hostname. */
  async remove(id: string): Promise<AgentRecord> {
    const a = await this.require(id);
    if (a.revokedAt === null) {
      throw new FerryError(ErrorCode.InvalidArgument, `agent ${id} (${a.hostname}) is not revoked; only revoked agents can be removed`,
        `revoke it first: ferry agents revoke ${id}`);
    }
    await this.db.tx(async (db) => {
      await db.run('DELETE FROM agent_bundles WHERE agent_id = ?', [id]);
      await db.run('DELETE FROM agents WHERE id = ?', [id]);
    });
    return a;
  }

  /** Other enrolled (not revoked) agents with this hostname. */
  async sameHostname(hostname: string, exceptId: string): Promise<AgentRecord[]> {
    return (await this.db.all<AgentRow>('SELECT * FROM agents WHERE hostname = ? AND id <> ? AND revoked_at IS NULL', [hostname, exceptId])).map(fromRow);
  }

  async revoke(id: string, at: number): Promise<AgentRecord> {
    await this.require(id);
    await this.db.run('UPDATE agents SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [at, id]);
    return this.require(id);
  }
}
