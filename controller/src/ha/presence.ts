import type { Logger } from '../../../common/src/log.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { Db } from '../store/db.js';
import type { ReplicaRegistry } from './replicas.js';

/**
 * Which agents have a session on some replica. Each replica records the
 * sessions it holds in agents.session_replica (set on connect; cleared on
 * disconnect only if still its own, so a late disconnect on the old
 * replica cannot clear the new one's). A row naming a replica that stopped
 * beating (killed) counts as offline. The scheduler asks once per pass.
 */
export class SessionPresence {
  private unsubscribe: (() => void) | undefined;
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly db: Db, private readonly replicaId: string, private readonly sessions: SessionRegistry,
    private readonly replicas: ReplicaRegistry, private readonly log: Logger) {}

  start(): void {
    this.unsubscribe = this.sessions.onChange((agentId) => {
      // One write at a time per agent, each saying what is true when it runs (a reconnect's up and the old session's down may come close together).
      const next = (this.chains.get(agentId) ?? Promise.resolve()).then(() => (this.sessions.get(agentId)
        ? this.db.run('UPDATE agents SET session_replica = ? WHERE id = ?', [this.replicaId, agentId])
        : this.db.run('UPDATE agents SET session_replica = NULL WHERE id = ? AND session_replica = ?', [agentId, this.replicaId])))
        .catch((err: Error) => this.log.warn({ err: err.message, agent: agentId }, 'session location not recorded'));
      this.chains.set(agentId, next);
      void next.then(() => { if (this.chains.get(agentId) === next) this.chains.delete(agentId); });
    });
  }

  /** Agents connected to any live replica (this one's sessions included). */
  async connected(): Promise<Set<string>> {
    const live = new Set(this.replicas.known().map((r) => r.id));
    live.add(this.replicaId);
    const rows = await this.db.all<{ id: string; session_replica: string }>('SELECT id, session_replica FROM agents WHERE session_replica IS NOT NULL');
    const out = new Set(rows.filter((r) => live.has(r.session_replica)).map((r) => r.id));
    for (const s of this.sessions.all()) out.add(s.agentId);
    return out;
  }

  /** Sessions per replica id, for status. */
  async perReplica(): Promise<Map<string, number>> {
    const rows = await this.db.all<{ r: string; n: number }>('SELECT session_replica AS r, COUNT(*) AS n FROM agents WHERE session_replica IS NOT NULL GROUP BY session_replica');
    return new Map(rows.map((x) => [x.r, Number(x.n)]));
  }

  /** A clean stop: this replica's sessions are gone. */
  async stop(): Promise<void> {
    this.unsubscribe?.();
    await Promise.all(this.chains.values());
    await this.db.run('UPDATE agents SET session_replica = NULL WHERE session_replica = ?', [this.replicaId]).catch(() => undefined);
  }
}
