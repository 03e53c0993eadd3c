import type { Db } from '../store/db.js';
import { dbNowSql } from './lease.js';

/** A controller replica as the shared store knows it. */
export interface ReplicaInfo {
  id: string;
  name: string;
  /** host:port agents dial (its join-string addresses). */
  addresses: string[];
  startedAt: number;
  seenAt: number;
  sessions: number;
}

/**
 * Every replica writes a row every few seconds (its addresses and how many
 * agent sessions it holds); a row unseen for `staleMs` (database clock) is
 * a replica that is gone. Join strings list the live replicas' addresses,
 * and `ferry controller status` shows them. A clean stop deletes the row.
 */
export class ReplicaRegistry {
  private cached: ReplicaInfo[] = [];

  constructor(private readonly db: Db, private readonly self: { id: string; name: string }, private readonly staleMs: number) {}

  /** Records this replica as alive now; refreshes the cached view of the others. */
  async beat(addresses: string[], sessions: number): Promise<void> {
    const now = dbNowSql(this.db.dialect);
    const r = await this.db.run(`UPDATE replicas SET addresses = ?, sessions = ?, seen_at = ${now} WHERE id = ?`, [JSON.stringify(addresses), sessions, this.self.id]);
    if (r.changes === 0) {
      await this.db.run(`INSERT INTO replicas (id, name, addresses, started_at, seen_at, sessions) VALUES (?, ?, ?, ${now}, ${now}, ?)`,
        [this.self.id, this.self.name, JSON.stringify(addresses), sessions]);
    }
    this.cached = await this.live();
  }

  /** Replicas seen within the stale time, this one first, then by start time. */
  async live(): Promise<ReplicaInfo[]> {
    const rows = await this.db.all<{ id: string; name: string; addresses: string; started_at: number; seen_at: number; sessions: number }>(
      `SELECT id, name, addresses, started_at, seen_at, sessions FROM replicas WHERE seen_at > ${dbNowSql(this.db.dialect)} - ? ORDER BY started_at, id`, [this.staleMs]);
    const all = rows.map((r) => ({ id: r.id, name: r.name, addresses: JSON.parse(r.addresses) as string[], startedAt: Number(r.started_at), seenAt: Number(r.seen_at), sessions: Number(r.sessions) }));
    return [...all.filter((r) => r.id === this.self.id), ...all.filter((r) => r.id !== this.self.id)];
  }

  /** The last view (from the latest beat), without asking the store. */
  known(): ReplicaInfo[] {
    return this.cached;
  }

  /** Join-string addresses: this replica's own first, then every other live replica's. */
  joinAddresses(own: string[]): string[] {
    const out = [...own];
    for (const r of this.cached) for (const a of r.addresses) if (!out.includes(a)) out.push(a);
    return out;
  }

  async remove(): Promise<void> {
    await this.db.run('DELETE FROM replicas WHERE id = ?', [this.self.id]);
  }
}
