/**
 * containerd's hosts.toml (`/etc/containerd/certs.d/<upstream>/hosts.toml`), written with a
 * real TOML serializer (smol-toml): one `[host."URL"]` table per mirror — object keys, so a
 * mirror can never appear twice (containerd ignores a whole file with duplicate tables) — and a
 * top-level `server` only when the site may fall back to the real registry.
 */
import { stringify } from 'smol-toml';
import { goDuration } from '../../../../common/src/plan/steps/containerd-mirror.js';

/** What one hosts.toml says. */
export interface HostsTomlSpec {
  /** Registry host (`docker.io`, `sea.hub:5000`) or `_default`. */
  upstream: string;
  /** Mirror URLs in the order containerd tries them (already normalised and unique). */
  mirrors: readonly string[];
  capabilities: readonly string[];
  /** CA file for https mirrors; undefined: the host's trust store. */
  ca?: string;
  /** Client certificate and key for https mirrors. */
  client?: readonly [string, string];
  dialTimeoutMs: number;
  /** Strictly offline: no `server` line. containerd 1.6 still tries the registry's default host after the mirrors (docs/mirror.md), so this keeps no pull inside by itself. */
  offline: boolean;
}

/** Where containerd pulls `upstream` from when no mirror answers (the `server` line). */
export function upstreamServer(upstream: string): string | undefined {
  if (upstream === '_default') return undefined; // no single upstream to name
  return upstream === 'docker.io' ? 'https://registry-1.docker.io' : `https://${upstream}`;
}

/** The file's text: a header saying who manages it, then the TOML. */
export function renderHostsToml(s: HostsTomlSpec): string {
  const server = s.offline ? undefined : upstreamServer(s.upstream);
  const doc: Record<string, unknown> = {};
  if (server) doc['server'] = server;
  const hosts: Record<string, Record<string, unknown>> = {};
  for (const m of s.mirrors) {
    const t: Record<string, unknown> = { capabilities: [...s.capabilities] };
    if (m.startsWith('https://')) {
      if (s.ca) t['ca'] = s.ca;
      if (s.client) t['client'] = [[s.client[0], s.client[1]]];
    }
    t['dial_timeout'] = goDuration(s.dialTimeoutMs);
    hosts[m] = t;
  }
  doc['host'] = hosts;
  const what = s.upstream === '_default' ? 'every registry without a directory of its own' : s.upstream;
  const mode = server ? `falls back to ${server} when no mirror answers` : 'mirror only: no server line (containerd 1.6 may still try the default upstream; a closed network keeps pulls inside, docs/mirror.md)';
  return `# Managed by Ferry (step containerd.mirror): ${what}, ${mode}.\n`
    + '# Edits here are replaced on the next run of the step.\n\n'
    + `${stringify(doc)}\n`;
}

