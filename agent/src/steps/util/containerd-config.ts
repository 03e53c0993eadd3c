/**
 * Does containerd read hosts.toml files from our directory? Only when its CRI registry
 * `config_path` names it: containerd 1.x (config `version = 2`) under
 * `[plugins."io.containerd.grpc.v1.cri".registry]`, containerd 2.x (`version = 3`) under
 * `[plugins."io.containerd.cri.v1.images".registry]`, and the old version-1 format under
 * `[plugins.cri.registry]`. Without a config file, 1.x uses no hosts directory at all and 2.x
 * uses `/etc/containerd/certs.d:/etc/docker/certs.d`. `ctr --hosts-dir` does not care; kubelet's
 * pulls (CRI) do.
 *
 * Pure functions on the file's text, so every case is a unit test.
 */
import { parse, stringify, TomlError } from 'smol-toml';

/** containerd 2.x's built-in config_path when the config does not set one. */
export const V2_DEFAULT_CONFIG_PATH = '/etc/containerd/certs.d:/etc/docker/certs.d';

/** What config.toml says about the hosts directory. */
export interface ConfigPathFinding {
  /** config_path (effective: the default when unset) lists the directory. */
  ok: boolean;
  /** The registry table's keys, e.g. ['plugins', 'io.containerd.grpc.v1.cri', 'registry']. */
  table: string[];
  /** Config format version the file declares (or would be created with). */
  version: number;
  /** config_path as set, undefined when unset. */
  configured?: string;
  /** What containerd uses. */
  effective: string;
  /** Settings containerd refuses together with config_path (it would not start). */
  conflicts: string[];
  /** Notes for people (e.g. a colon-separated list). */
  notes: string[];
}

/** The TOML header of a table path: `[plugins."io.containerd.grpc.v1.cri".registry]`. */
export function tableHeader(keys: readonly string[]): string {
  return `[${keys.map((k) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k))).join('.')}]`;
}

function registryTable(version: number): string[] {
  if (version >= 3) return ['plugins', 'io.containerd.cri.v1.images', 'registry'];
  if (version === 2) return ['plugins', 'io.containerd.grpc.v1.cri', 'registry'];
  return ['plugins', 'cri', 'registry'];
}

function dig(doc: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> | undefined {
  let t: unknown = doc;
  for (const k of keys) {
    if (!t || typeof t !== 'object' || Array.isArray(t)) return undefined;
    t = (t as Record<string, unknown>)[k];
  }
  return t && typeof t === 'object' && !Array.isArray(t) ? (t as Record<string, unknown>) : undefined;
}

/** Parses config.toml; throws an Error naming the line when it is not TOML. */
export function parseConfig(text: string, shown: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (e) {
    const where = e instanceof TomlError ? `:${e.line}:${e.column}` : '';
    throw new Error(`${shown}${where} is not valid TOML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/**
 * Inspects config.toml's text (undefined: no file) for `certsDir`. `major` is containerd's
 * major version (from `containerd --version`), which decides defaults when the file is silent.
 */
export function inspectConfig(text: string | undefined, major: number, certsDir: string, shown: string): ConfigPathFinding {
  const doc = text === undefined ? {} : parseConfig(text, shown);
  const declared = typeof doc['version'] === 'number' ? doc['version'] : text === undefined ? (major >= 2 ? 3 : 2) : 1;
  const table = registryTable(declared);
  const reg = dig(doc, table);
  const configured = typeof reg?.['config_path'] === 'string' ? (reg['config_path'] as string) : undefined;
  const effective = configured ?? (major >= 2 ? V2_DEFAULT_CONFIG_PATH : '');
  const dirs = effective.split(':').filter(Boolean).map((d) => d.replace(/\/+$/, ''));
  const conflicts: string[] = [];
  const mirrors = reg?.['mirrors'];
  if (mirrors && typeof mirrors === 'object' && Object.keys(mirrors).length > 0) conflicts.push(`${tableHeader([...table, 'mirrors'])} (${Object.keys(mirrors).join(', ')})`);
  const configs = reg?.['configs'];
  if (configs && typeof configs === 'object') {
    for (const [host, c] of Object.entries(configs as Record<string, unknown>)) {
      if (c && typeof c === 'object' && 'tls' in c) conflicts.push(tableHeader([...table, 'configs', host, 'tls']));
    }
  }
  const notes: string[] = [];
  if (dirs.length > 1 && dirs.includes(certsDir)) notes.push(`config_path lists several directories ("${effective}"); some containerd 2.2 releases mishandle colon-separated lists — "${certsDir}" alone is the safe value`);
  return { ok: dirs.includes(certsDir), table, version: declared, configured, effective, conflicts, notes };
}

/** config.toml's text with config_path = certsDir (a new file gets a `version` line). Comments are not kept. */
export function withConfigPath(text: string | undefined, f: ConfigPathFinding, certsDir: string, shown: string): string {
  const doc = text === undefined ? { version: f.version } : parseConfig(text, shown);
  let t: Record<string, unknown> = doc;
  for (const k of f.table) {
    const next = t[k];
    if (!next || typeof next !== 'object' || Array.isArray(next)) t[k] = {};
    t = t[k] as Record<string, unknown>;
  }
  t['config_path'] = certsDir;
  return `${stringify(doc)}\n`;
}

/** The exact lines to put in config.toml, for a message. */
export function configPathSnippet(f: ConfigPathFinding, certsDir: string): string {
  return `${tableHeader(f.table)}\n  config_path = ${JSON.stringify(certsDir)}`;
}
