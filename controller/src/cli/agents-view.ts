import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AgentInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import type { AgentUpgradeReport } from '../../../common/src/gen/ferry/v1/session.js';
import { upgradeOutcomeName } from '../../../common/src/upgrade-outcome.js';
import { listToLabels } from '../../../common/src/labels.js';
import { ago, bytes, fit, table } from '../../../common/src/table.js';

/** How `ferry agents ls` prints: a table that fits the terminal, every column, JSON, or ids only. */
export type AgentsOutput = 'table' | 'wide' | 'json' | 'name';
export type AgentState = 'online' | 'offline' | 'revoked';
const SORTS = ['hostname', 'id', 'state', 'last-seen', 'version'] as const;
export type AgentSort = (typeof SORTS)[number];

export function agentState(a: AgentInfo): AgentState {
  return a.revokedAtMs ? 'revoked' : a.connected ? 'online' : 'offline';
}

/**
 * The stable JSON record of an agent (docs/json.md, "agent"): labels as a map,
 * state as a word, times in epoch ms (revokedAtMs null while not revoked).
 */
export function agentJson(a: AgentInfo) {
  return { id: a.id, hostname: a.hostname, state: agentState(a), connected: a.connected, labels: listToLabels(a.labels),
    agentVersion: a.agentVersion, protocolVersion: a.protocolVersion, previousAgentVersion: a.previousAgentVersion || null, lastSeenMs: a.lastSeenMs, enrolledAtMs: a.enrolledAtMs, revokedAtMs: a.revokedAtMs || null,
    certNotAfterMs: a.certNotAfterMs, peerAddress: a.peerAddress, bundles: a.bundles, facts: a.facts ?? null, lastUpgrade: upgradeJson(a.lastUpgrade) };
}

/** A host's last self-upgrade as JSON (docs/json.md, "agent".lastUpgrade), or null. */
function upgradeJson(u: AgentUpgradeReport | undefined) {
  return u ? { upgradeId: u.upgradeId, from: u.fromVersion, to: u.toVersion, outcome: upgradeOutcomeName(u.outcome) ?? 'unknown', reason: u.reason, logTail: u.logTail, atMs: u.timeMs } : null;
}

function userLabels(a: AgentInfo): string {
  return a.labels.filter((l) => !l.key.startsWith('ferry/')).map((l) => `${l.key}=${l.value}`).join(',');
}

/** Checks `-o`, `--sort` and `--state` once, with the allowed values in the message. */
export function parseListOptions(v: { output?: string; sort?: string; state?: string }): { output: AgentsOutput; sort: AgentSort; state?: AgentState } {
  const output = (v.output ?? 'table') as AgentsOutput;
  if (!['table', 'wide', 'json', 'name'].includes(output)) throw new FerryError(ErrorCode.InvalidArgument, `-o ${v.output}: expected wide, json or name`);
  const sort = (v.sort ?? 'hostname') as AgentSort;
  if (!SORTS.includes(sort)) throw new FerryError(ErrorCode.InvalidArgument, `--sort ${v.sort}: expected one of ${SORTS.join(', ')}`);
  const state = v.state as AgentState | undefined;
  if (state !== undefined && !['online', 'offline', 'revoked'].includes(state)) {
    throw new FerryError(ErrorCode.InvalidArgument, `--state ${v.state}: expected online, offline or revoked`);
  }
  return { output, sort, state };
}

export function sortAgents(agents: AgentInfo[], sort: AgentSort): AgentInfo[] {
  const key = (a: AgentInfo): string | number => {
    switch (sort) {
      case 'id': return a.id;
      case 'state': return agentState(a);
      case 'last-seen': return -(a.connected ? Number.MAX_SAFE_INTEGER : a.lastSeenMs);
      case 'version': return a.agentVersion.replace(/\d+/g, (n) => n.padStart(6, '0'));
      default: return a.hostname;
    }
  };
  return [...agents].sort((x, y) => {
    const a = key(x);
    const b = key(y);
    return a < b ? -1 : a > b ? 1 : x.id < y.id ? -1 : 1;
  });
}

/**
 * The list as text. The default table has the columns an operator scans
 * (hostname, id, state, last seen, version, labels) and fits `width`
 * (labels are cut to the room left); `wide` adds facts and does not cut.
 * Hostnames shared by several agents are marked with `*` and listed below.
 */
export function renderAgents(agents: AgentInfo[], output: 'table' | 'wide', width: number): string {
  const counts = new Map<string, number>();
  for (const a of agents) if (!a.revokedAtMs) counts.set(a.hostname, (counts.get(a.hostname) ?? 0) + 1);
  const host = (a: AgentInfo) => (counts.get(a.hostname)! > 1 ? `${a.hostname}*` : a.hostname);
  const seen = (a: AgentInfo) => (a.connected ? 'now' : ago(a.lastSeenMs));
  let out: string;
  if (output === 'wide') {
    const tools = (a: AgentInfo) => (a.facts?.tools ?? []).filter((t) => t.present).map((t) => t.name).join(',');
    out = table([
      ['HOSTNAME', 'ID', 'STATE', 'LAST SEEN', 'VERSION', 'PREVIOUS', 'OS', 'ARCH', 'CPU', 'MEM', 'CERT EXPIRES', 'TOOLS', 'LABELS'],
      ...agents.map((a) => [host(a), a.id, agentState(a), seen(a), a.agentVersion, a.previousAgentVersion || '-', `${a.facts?.os ?? ''} ${a.facts?.osRelease ?? ''}`.trim(),
        a.facts?.arch ?? '', String(a.facts?.cpus ?? ''), bytes(a.facts?.memoryBytes ?? 0), new Date(a.certNotAfterMs).toISOString().slice(0, 16), tools(a), userLabels(a)]),
    ]);
  } else {
    const rows = agents.map((a) => [fit(host(a), 24), a.id, agentState(a), seen(a), fit(a.agentVersion, 10), userLabels(a)]);
    const header = ['HOSTNAME', 'ID', 'STATE', 'LAST SEEN', 'VERSION', 'LABELS'];
    // Room left for labels once the fixed columns (and two spaces between each) are laid out.
    const fixed = header.slice(0, -1).map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)) + 2).reduce((x, y) => x + y, 0);
    const room = Math.max(6, width - fixed);
    out = table([header, ...rows.map((r) => [...r.slice(0, -1), fit(r.at(-1)!, room)])]);
  }
  const shared = [...counts].filter(([, n]) => n > 1).map(([h]) => h);
  if (shared.length > 0) {
    out += `* hostname shared by several agents (${shared.slice(0, 5).join(', ')}${shared.length > 5 ? ', …' : ''}): target them by id, or re-join with --hostname\n`;
  }
  return out;
}

/** `ferry agents show ID`: everything known about one host. */
export function renderAgent(a: AgentInfo): string {
  const f = a.facts;
  const lines: Array<[string, string]> = [
    ['id', a.id],
    ['hostname', a.hostname],
    ['state', `${agentState(a)}${a.connected ? ` (from ${a.peerAddress})` : ''}`],
    ['last seen', a.connected ? 'now' : `${ago(a.lastSeenMs)}${a.lastSeenMs ? ` (${new Date(a.lastSeenMs).toISOString()})` : ''}`],
    ['enrolled', new Date(a.enrolledAtMs).toISOString()],
    ['certificate', `expires ${new Date(a.certNotAfterMs).toISOString()}${a.certNotAfterMs < Date.now() ? ' (expired: the agent re-authenticates with its key when it connects)' : ''}`],
    ...(a.revokedAtMs ? [['revoked', new Date(a.revokedAtMs).toISOString()] as [string, string]] : []),
    ...(a.reauthAllowedAtMs ? [['re-auth allowed', new Date(a.reauthAllowedAtMs).toISOString()] as [string, string]] : []),
    ['agent version', `${a.agentVersion}${a.protocolVersion ? ` (protocol ${a.protocolVersion})` : ''}${a.previousAgentVersion ? `; ${a.previousAgentVersion} kept for rollback` : ''}`],
    ['os', `${f?.os ?? ''} ${f?.osRelease ?? ''}, kernel ${f?.kernel ?? '?'}, ${f?.arch ?? '?'}`],
    ['cpu / memory', `${f?.cpus ?? '?'} / ${bytes(f?.memoryBytes ?? 0)}`],
    ['tools', (f?.tools ?? []).map((t) => `${t.name}${t.present ? (t.version ? ` ${t.version}` : '') : ' (missing)'}`).join(', ') || '-'],
    ['disks', (f?.disks ?? []).map((d) => `${d.mount} ${bytes(d.availableBytes)} free of ${bytes(d.sizeBytes)}`).join('; ') || '-'],
    ['labels', a.labels.map((l) => `${l.key}=${l.value}`).join(' ')],
    ['bundles', a.bundles.join(', ') || '-'],
    ...(a.lastUpgrade ? [['last upgrade', `${a.lastUpgrade.fromVersion} -> ${a.lastUpgrade.toVersion} ${upgradeOutcomeName(a.lastUpgrade.outcome) ?? '?'} (${new Date(a.lastUpgrade.timeMs).toISOString()}): ${a.lastUpgrade.reason}`] as [string, string]] : []),
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  const tail = a.lastUpgrade?.logTail.length ? `  its last log lines:\n${a.lastUpgrade.logTail.map((l) => `    ${l}`).join('\n')}\n` : '';
  return lines.map(([k, v]) => `${`${k}:`.padEnd(w + 2)}${v}`).join('\n') + '\n' + tail;
}
