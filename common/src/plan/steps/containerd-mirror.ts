/**
 * `containerd.mirror`: point a host's containerd at a registry mirror (Ferry's registry
 * endpoint, a relay, or any OCI registry) through containerd's hosts.toml files — one
 * `<certsDir>/<upstream>/hosts.toml` per upstream registry (`docker.io`, `registry.k8s.io`,
 * `sea.hub:5000`; a port stays in the directory name as `host:5000`, which is what containerd
 * looks up on Linux) and `_default` when asked.
 *
 * ```yaml
 * - id: mirror
 *   type: containerd.mirror
 *   args:
 *     mirrors: [relay, "https://10.77.0.1:5443"]   # tried in order; `relay`: this host's site relays (docs/relays.md)
 *     upstreams: [docker.io, registry.k8s.io, "sea.hub:5000"]
 *     offline: true           # default: no `server` line (containerd 1.6 may still try the default upstream: docs/mirror.md)
 *     ca: fleet               # the agent's fleet CA (default) | system | /abs/ca.pem
 *     client: fleet           # the agent's own certificate and key (default) | none | {cert, key}
 *     dialTimeout: 3s
 *     containerdConfig: check # check (default) | set (edit config.toml, restart containerd) | skip
 * ```
 *
 * Bad input is refused here, before a plan is stored: duplicate upstreams or mirrors, URLs
 * that are not `http(s)://host[:port][/path]`, upstream names that are not registry hosts
 * (no scheme, no path: they become directory names), and relative paths.
 */
import { ArgReader, schema } from '../step-schema.js';
import { parseDuration } from '../../duration.js';
import { validDomain } from '../../bundle/lint/image-ref.js';
import { readAbsPath } from './file-install.js';

/** Where the CA that verifies the mirror's certificate comes from. */
export type MirrorCa = { kind: 'fleet' } | { kind: 'system' } | { kind: 'file'; path: string };
/** The client certificate containerd presents to the mirror. */
export type MirrorClient = { kind: 'fleet' } | { kind: 'none' } | { kind: 'files'; cert: string; key: string };

/** Parsed args of `containerd.mirror`. */
export interface ContainerdMirrorArgs {
  /** Normalised mirror URLs (`https://host:port` or with a path prefix), in the order containerd tries them. */
  mirrors: string[];
  /** Registry hosts as containerd names them (`docker.io`, `sea.hub:5000`), lower-case. */
  upstreams: string[];
  /** Also write `_default/hosts.toml` (every registry not listed). */
  writeDefault: boolean;
  /** Strictly offline: no `server` fallback to the real upstream. */
  offline: boolean;
  capabilities: Array<'pull' | 'resolve'>;
  ca: MirrorCa;
  client: MirrorClient;
  /** Milliseconds; written as a Go duration (`3s`, `1500ms`). */
  dialTimeoutMs: number;
  /** containerd's hosts directory (what `config_path` must name). */
  certsDir: string;
  /** containerd's main config file. */
  configFile: string;
  /** What to do when config.toml does not point containerd at certsDir. */
  containerdConfig: 'check' | 'set' | 'skip';
  /** Copy a hosts.toml (or config.toml) to `<file>.ferry-bak-<stamp>` before replacing it. */
  backup: boolean;
}

/** A registry host as containerd sees it in an image name (`docker.io`, `sea.hub:5000`, `[fd00::1]:5000`), or a problem. */
export function checkRegistryHost(h: string): string | undefined {
  if (!validDomain(h)) return 'must be a registry host like docker.io or sea.hub:5000 (no scheme, no path)';
  const port = /:(\d+)$/.exec(h)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return `port ${port} is out of range`;
  return undefined;
}

/** `http(s)://host[:port][/path]` without user, query or fragment, normalised (no trailing slash); or a problem. */
export function normalizeMirrorUrl(raw: string): { url?: string; problem?: string } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return { problem: `"${raw}" is not a URL; write it like https://10.77.0.1:5443` };
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return { problem: `"${raw}" must use https:// (or http://), not ${u.protocol}` };
  if (u.username || u.password) return { problem: `"${raw}" must not carry a user or password (containerd would send them to every registry it mirrors)` };
  if (u.search || u.hash || raw.includes('?') || raw.includes('#')) return { problem: `"${raw}" must not have a query or fragment` };
  const hostProblem = checkRegistryHost(u.host);
  if (hostProblem) return { problem: `"${raw}": host ${hostProblem}` };
  const path = u.pathname.replace(/\/+$/, '');
  if (/(^|\/)\.\.?(\/|$)|%2f|%2e/i.test(path)) return { problem: `"${raw}" has a path with dots or encoded slashes` };
  return { url: `${u.protocol}//${u.host}${path}` };
}

/**
 * A `mirrors` entry that stands for this host's site relays serving the
 * registry (docs/relays.md), most preferred first, as the controller
 * assigned them when the step runs; none when the host has no such relay.
 * List a URL after it (the controller's registry) so containerd falls back.
 */
export const RELAY_MIRROR = 'relay';

function readMirrors(r: ArgReader): string[] {
  const list = r.stringList('mirrors', { required: true, nonEmpty: true }) ?? [];
  const out: string[] = [];
  const seen = new Map<string, number>();
  list.forEach((raw, i) => {
    if (raw === RELAY_MIRROR) {
      if (seen.has(raw)) { r.problem(`mirrors[${i}]`, `"relay" is listed twice (also mirrors[${seen.get(raw)}])`); return; }
      seen.set(raw, i);
      out.push(raw);
      return;
    }
    const n = normalizeMirrorUrl(raw);
    if (n.problem) { r.problem(`mirrors[${i}]`, n.problem); return; }
    if (seen.has(n.url!)) { r.problem(`mirrors[${i}]`, `"${raw}" is the same mirror as mirrors[${seen.get(n.url!)}] (containerd ignores a hosts.toml with duplicate host tables)`); return; }
    seen.set(n.url!, i);
    out.push(n.url!);
  });
  return out;
}

function readUpstreams(r: ArgReader, writeDefault: boolean): string[] {
  const list = r.stringList('upstreams') ?? [];
  if (list.length === 0 && !writeDefault) r.problem('upstreams', 'give at least one upstream registry (e.g. [docker.io, registry.k8s.io]) or "default: true"');
  const seen = new Map<string, number>();
  const out: string[] = [];
  list.forEach((raw, i) => {
    const h = raw.trim().toLowerCase();
    if (h === '_default') { r.problem(`upstreams[${i}]`, 'write "default: true" instead of listing _default'); return; }
    const p = checkRegistryHost(h);
    if (p) { r.problem(`upstreams[${i}]`, `"${raw}" ${p}`); return; }
    if (h === 'index.docker.io' || h === 'registry-1.docker.io') { r.problem(`upstreams[${i}]`, `containerd names Docker Hub images "docker.io"; write docker.io instead of ${raw}`); return; }
    if (seen.has(h)) { r.problem(`upstreams[${i}]`, `"${raw}" is listed twice (also upstreams[${seen.get(h)}])`); return; }
    seen.set(h, i);
    out.push(h);
  });
  return out;
}

function readCa(r: ArgReader): MirrorCa {
  const v = r.string('ca', { default: 'fleet' })!;
  if (v === 'fleet') return { kind: 'fleet' };
  if (v === 'system') return { kind: 'system' };
  const p = readAbsPath(r, 'ca');
  if (p === undefined) r.problem('ca', '"ca" is "fleet" (the agent\'s fleet CA), "system" (the host\'s trust store) or an absolute path to a PEM file');
  return { kind: 'file', path: p ?? '' };
}

function readClient(r: ArgReader): MirrorClient {
  const v = r.any('client');
  if (v === undefined || v === 'fleet') return { kind: 'fleet' };
  if (v === 'none') return { kind: 'none' };
  if (typeof v !== 'object' || Array.isArray(v)) {
    r.problem('client', '"client" is "fleet" (the agent\'s own certificate), "none", or {cert: /abs/path, key: /abs/path}');
    return { kind: 'none' };
  }
  const c = new ArgReader(v as Record<string, unknown>, 'client');
  const cert = readAbsPath(c, 'cert');
  const key = readAbsPath(c, 'key');
  c.done();
  r.problems.push(...c.problems);
  return cert !== undefined && key !== undefined ? { kind: 'files', cert, key } : { kind: 'none' };
}

/** Formats milliseconds as a Go duration containerd parses. */
export function goDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Schema for `containerd.mirror`. */
export const containerdMirrorSchema = schema<ContainerdMirrorArgs>(
  'containerd.mirror',
  'Point containerd at registry mirrors: one certs.d/<upstream>/hosts.toml per upstream (CA, client cert, no upstream fallback when offline), and check or set config_path',
  (r) => {
    const mirrors = readMirrors(r);
    const writeDefault = r.bool('default', { default: false })!;
    const upstreams = readUpstreams(r, writeDefault);
    const caps = r.stringList('capabilities') ?? ['pull', 'resolve'];
    caps.forEach((c, i) => { if (c !== 'pull' && c !== 'resolve') r.problem(`capabilities[${i}]`, `"${c}" is not a mirror capability (pull, resolve; "push" is not served by a mirror)`); });
    if (caps.length === 0) r.problem('capabilities', '"capabilities" must not be empty (containerd would never use the mirror)');
    if (new Set(caps).size !== caps.length) r.problem('capabilities', '"capabilities" lists a capability twice');
    const ca = readCa(r);
    const client = readClient(r);
    if (mirrors.length === 1 && mirrors[0] === RELAY_MIRROR) {
      r.problem('mirrors', '"relay" alone leaves a host without a relay nothing to pull from: list the controller\'s registry after it, e.g. [relay, "https://ferry.plant7.example:5000"]');
    }
    const anyHttps = mirrors.some((m) => m.startsWith('https://') || m === RELAY_MIRROR);
    if (!anyHttps && mirrors.length > 0) {
      if (ca.kind === 'file') r.problem('ca', '"ca" applies to https:// mirrors only, and every mirror here is http://');
      if (client.kind === 'files') r.problem('client', '"client" applies to https:// mirrors only, and every mirror here is http://');
    }
    const rawTimeout = r.string('dialTimeout', { default: '3s' })!;
    let dialTimeoutMs = 3000;
    try {
      dialTimeoutMs = parseDuration(rawTimeout, 'dialTimeout');
      if (/d/.test(rawTimeout) || dialTimeoutMs < 100 || dialTimeoutMs > 120_000) r.problem('dialTimeout', `"dialTimeout" must be between 100ms and 2m (got "${rawTimeout}")`);
    } catch {
      r.problem('dialTimeout', `"dialTimeout" must be a duration like 3s or 1500ms (got "${rawTimeout}")`);
    }
    const certsDir = readAbsPath(r, 'certsDir', false) ?? '/etc/containerd/certs.d';
    if (certsDir === '/' || certsDir.includes(':')) r.problem('certsDir', `"certsDir" must be one directory like /etc/containerd/certs.d (got "${certsDir}")`);
    return {
      mirrors, upstreams, writeDefault,
      offline: r.bool('offline', { default: true })!,
      capabilities: caps as Array<'pull' | 'resolve'>,
      ca, client, dialTimeoutMs, certsDir,
      configFile: readAbsPath(r, 'configFile', false) ?? '/etc/containerd/config.toml',
      containerdConfig: r.oneOf('containerdConfig', ['check', 'set', 'skip'] as const, { default: 'check' })!,
      backup: r.bool('backup', { default: true })!,
    };
  },
);
