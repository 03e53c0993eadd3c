import { parseByteSize } from '../../../common/src/byte-size.js';
import { parseFlags } from '../../../common/src/cli-support.js';
import { writeRecord, writeRecords } from '../../../common/src/cli/json-records.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import type { RelayInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { selectorProblem } from '../../../common/src/labels.js';
import { ago, bytes, table } from '../../../common/src/table.js';
import { Admin, adminFlags } from './admin-client.js';

/** One `relay` record (docs/json.md). Cache figures are null until the relay reported. */
export function relayRecord(r: RelayInfo): object {
  const s = r.status;
  const asked = s ? s.hits + s.misses : 0;
  return {
    agentId: r.agentId, hostname: r.hostname, serves: r.serves, hostsServed: r.hostsServed, connected: r.connected,
    listen: r.listen, advertise: r.advertise || null, address: s?.address || null,
    registryListen: r.registryListen || null, registryAddress: s?.registryAddress || null,
    cacheBytes: r.cacheBytes, cacheUsedBytes: s ? s.cacheUsedBytes : null, cacheChunks: s ? s.cacheChunks : null,
    hits: s ? s.hits : null, misses: s ? s.misses : null, hitRatio: s && asked > 0 ? s.hits / asked : null,
    bytesFromUpstream: s ? s.bytesFromUpstream : null, bytesServed: s ? s.bytesServed : null,
    upstreamBytesPerSec: s && s.upstreamBytesPerSec > 0 ? s.upstreamBytesPerSec : null,
    droppedCorrupt: s ? s.droppedCorrupt : null, error: s?.error || null,
    enabledBy: r.enabledBy, enabledAtMs: r.enabledAtMs, reportedAtMs: r.statusAtMs || null,
  };
}

function row(r: RelayInfo): string[] {
  const s = r.status;
  const asked = s ? s.hits + s.misses : 0;
  return [
    r.hostname || r.agentId, r.serves, String(r.hostsServed.length), s?.error ? `error: ${s.error}` : s?.address || (r.connected ? 'starting' : 'offline'),
    s ? `${bytes(s.cacheUsedBytes)}/${bytes(r.cacheBytes)}` : `-/${bytes(r.cacheBytes)}`,
    asked > 0 ? `${Math.round((100 * s!.hits) / asked)}%` : '-',
    s ? bytes(s.bytesFromUpstream) : '-', s ? bytes(s.bytesServed) : '-',
    s && s.upstreamBytesPerSec > 0 ? `${bytes(s.upstreamBytesPerSec)}/s` : '-',
    r.statusAtMs ? ago(r.statusAtMs) : '-',
  ];
}

/**
 * Refused before anything is sent, exit 2: a size that is not one, a
 * selector that does not parse, a missing host.
 */
function enableRequest(positionals: string[], values: Record<string, unknown>): { host: string; serves: string; cacheBytes: number; listen: string; advertise: string; registryListen: string } {
  const host = positionals[0];
  if (!host) throw new FerryError(ErrorCode.InvalidArgument, 'no relay host given', 'e.g. ferry relay enable edge-gw-7 --serves site=plant-7');
  const serves = String(values['serves'] ?? '');
  if (!serves.trim()) throw new FerryError(ErrorCode.InvalidArgument, 'a relay needs --serves: the hosts it serves, as a label selector', 'e.g. --serves site=plant-7');
  const problem = selectorProblem(serves);
  if (problem) throw new FerryError(ErrorCode.InvalidArgument, `--serves "${serves}": invalid selector at column ${problem.column}: ${problem.message}`, 'e.g. --serves site=plant-7 or --serves "site in (plant-7,plant-8)"');
  const size = values['cache-size'] === undefined ? 0 : parseByteSize(String(values['cache-size']), '--cache-size');
  if (values['cache-size'] !== undefined && size === 0) throw new FerryError(ErrorCode.InvalidArgument, '--cache-size 0: a relay needs a cache', 'e.g. --cache-size 20G');
  return { host, serves, cacheBytes: size, listen: String(values['listen'] ?? ''), advertise: String(values['advertise'] ?? ''),
    registryListen: String(values['registry-listen'] ?? '') };
}

/** `ferry relay enable HOST --serves SELECTOR | disable HOST` (docs/relays.md). */
export async function cmdRelay(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseFlags(rest, {
    ...adminFlags, json: { type: 'boolean' }, serves: { type: 'string' }, 'cache-size': { type: 'string' }, listen: { type: 'string' }, advertise: { type: 'string' },
    'registry-listen': { type: 'string' },
  });
  if (sub !== 'enable' && sub !== 'disable') throw new FerryError(ErrorCode.InvalidArgument, `unknown relay command "${sub ?? ''}"`, 'use enable or disable');
  const req = sub === 'enable' ? enableRequest(positionals, values) : undefined;
  if (sub === 'disable' && !positionals[0]) throw new FerryError(ErrorCode.InvalidArgument, 'no relay host given', 'e.g. ferry relay disable edge-gw-7');
  const admin = Admin.connect(values);
  try {
    const r = req
      ? await admin.call(admin.client.enableRelay, req)
      : await admin.call(admin.client.disableRelay, { host: positionals[0]! });
    if (values.json) writeRecord(relayRecord(r));
    else if (req) process.stdout.write(`${r.hostname} is a relay for ${r.serves} (${r.hostsServed.length} hosts now), cache ${bytes(r.cacheBytes)}, listening on ${r.listen}${r.registryListen ? `, registry and files on ${r.registryListen}` : ''}\n`);
    else process.stdout.write(`${r.hostname} is no longer a relay; the hosts it served fetch from the controller (or their other relays)\n`);
    return Exit.Ok;
  } finally {
    admin.close();
  }
}

/** `ferry relays ls`. */
export async function cmdRelays(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values } = parseFlags(rest, { ...adminFlags, json: { type: 'boolean' } });
  if (sub !== 'ls') throw new FerryError(ErrorCode.InvalidArgument, `unknown relays command "${sub ?? ''}"`, 'use ls');
  const admin = Admin.connect(values);
  try {
    const { relays } = await admin.call(admin.client.listRelays, {});
    if (values.json) writeRecords(relays.map(relayRecord));
    else process.stdout.write(table([['RELAY', 'SERVES', 'HOSTS', 'ADDRESS', 'CACHE', 'HITS', 'UPSTREAM', 'SERVED', 'UP RATE', 'REPORTED'], ...relays.map(row)]));
    return Exit.Ok;
  } finally {
    admin.close();
  }
}
