import type { ControllerStatusResponse } from '../../../common/src/gen/ferry/v1/admin.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { Db } from '../store/db.js';
import { storeVersion } from '../store/migrate.js';
import type { Lease } from './lease.js';
import type { SessionPresence } from './presence.js';
import type { ReplicaRegistry } from './replicas.js';

export interface StatusSources {
  db: Db;
  replicaId: string;
  store: string;
  chunkDir: string;
  /** The scheduler lease, read (not taken). */
  lease: Lease;
  replicas: ReplicaRegistry;
  sessions: SessionRegistry;
  /** Where each agent's session is (shared stores only). */
  presence: SessionPresence | undefined;
}

/**
 * `ferry controller status`: the replicas as the store sees them now, from
 * any replica. Leader and epoch come from the lease row (not from the
 * answering replica's own belief), sessions per replica from where the
 * agents' sessions are recorded; on SQLite, the one controller's own count.
 */
export async function controllerStatus(s: StatusSources): Promise<ControllerStatusResponse> {
  const [lease, live, perReplica, schema] = await Promise.all([
    s.lease.read(), s.replicas.live(), s.presence?.perReplica(), storeVersion(s.db),
  ]);
  const held = lease && lease.owner !== '' && lease.expiresAt > lease.now ? lease : undefined;
  const sessionsOf = (id: string, beat: number) => (id === s.replicaId && !s.presence ? s.sessions.size : perReplica?.get(id) ?? beat);
  return {
    store: s.store,
    replicaId: s.replicaId,
    leader: held?.owner ?? '',
    epoch: lease?.epoch ?? 0,
    leaseExpiresInMs: held ? held.expiresAt - held.now : 0,
    replicas: live.map((r) => ({
      id: r.id, name: r.name, addresses: r.addresses, startedAtMs: r.startedAt, seenAtMs: r.seenAt,
      sessions: sessionsOf(r.id, r.sessions), leader: held?.owner === r.id, self: r.id === s.replicaId,
    })),
    schemaVersion: schema,
    version: FERRY_VERSION,
    chunkDir: s.chunkDir,
  };
}
