import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { ControllerStatusResponse, ReplicaStatus } from '../../../common/src/gen/ferry/v1/admin.js';
import { ago, table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';

/** The `--json` record of one replica (docs/json.md, "controller-replica"). */
export function replicaRecord(r: ReplicaStatus): Record<string, unknown> {
  return { id: r.id, name: r.name, addresses: r.addresses, startedAtMs: r.startedAtMs, seenAtMs: r.seenAtMs, sessions: r.sessions, leader: r.leader, self: r.self };
}

/** The `--json` record of `ferry controller status` (docs/json.md, "controller-status"). */
export function controllerStatusRecord(s: ControllerStatusResponse): Record<string, unknown> {
  return {
    type: 'controller-status', store: s.store, replicaId: s.replicaId, leader: s.leader || null, epoch: s.epoch,
    leaseExpiresInMs: s.leader ? s.leaseExpiresInMs : null, schemaVersion: s.schemaVersion, version: s.version, chunkDir: s.chunkDir,
    replicas: s.replicas.map(replicaRecord),
  };
}

/** `ferry controller status [--json]`: the replicas on this store, the scheduler and its epoch, sessions per replica. */
export async function cmdControllerStatus(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...adminFlags, json: { type: 'boolean' } });
  if (positionals.length) throw new FerryError(ErrorCode.InvalidArgument, `controller status takes no arguments, not ${positionals.join(' ')}`, 'use `ferry controller status [--json]`');
  const admin = Admin.connect(values);
  try {
    const s = await admin.call(admin.client.controllerStatus, {});
    if (values.json) {
      writeRecord(controllerStatusRecord(s));
      return Exit.Ok;
    }
    const leader = s.replicas.find((r) => r.leader);
    process.stdout.write(
      `store:      ${s.store} (schema ${s.schemaVersion})\n`
      + `chunks:     ${s.chunkDir}\n`
      + `scheduler:  ${s.leader ? `${s.leader}${leader ? ` on ${leader.name}` : ' (not among the live replicas)'}, epoch ${s.epoch}, lease ${s.leaseExpiresInMs >= 0 ? `renewed, ${(s.leaseExpiresInMs / 1000).toFixed(1)}s left` : 'expired'}` : `none holds the lease now (epoch ${s.epoch}); a replica takes it within one try`}\n`
      + `answered by ${s.replicaId} (ferry ${s.version})\n\n`,
    );
    process.stdout.write(table([
      ['REPLICA', 'HOST', 'ADDRESSES', 'SESSIONS', 'SCHEDULER', 'STARTED', 'SEEN'],
      ...s.replicas.map((r) => [`${r.id}${r.self ? '*' : ''}`, r.name, r.addresses.join(','), String(r.sessions), r.leader ? 'yes' : '', ago(r.startedAtMs), ago(r.seenAtMs)]),
    ]));
    return Exit.Ok;
  } finally {
    admin.close();
  }
}
