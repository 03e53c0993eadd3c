/**
 * `file.install`: put a file from a bundle (or inline content) at a path on
 * the host, with mode and ownership, atomically. Also home of the small
 * readers other file-writing steps share (absolute paths, modes, owners).
 */
import { posix } from 'node:path';
import { schema, type ArgReader } from '../step-schema.js';

/** Where a file's bytes come from: a staged bundle file, or text written in the plan. */
export type FileSource = { bundle: string; src: string } | { content: string };

/** Mode and ownership for a written file; unset fields keep what an existing file has. */
export interface FileAttrs {
  /** Permission bits, e.g. 0o644. New files default to 0o644. */
  mode?: number;
  /** User name or numeric uid. */
  owner?: string;
  /** Group name or numeric gid. */
  group?: string;
  /** Copy the old file to `<dest>.ferry-bak-<UTC stamp>` before replacing it. */
  backup: boolean;
}

/** Parsed args of `file.install`. */
export interface FileInstallArgs extends FileAttrs {
  source: FileSource;
  /** Absolute host path. */
  dest: string;
}

/**
 * Reads an absolute host path. Paths are normalised here so `..` cannot walk
 * above the host root the agent resolves them under.
 */
export function readAbsPath(r: ArgReader, key: string, required = true): string | undefined {
  const p = r.string(key, { required });
  if (p === undefined) return undefined;
  if (!p.startsWith('/')) {
    r.problem(key, `"${key}" must be an absolute path (got "${p}")`);
    return undefined;
  }
  return posix.normalize(p);
}

/** Reads a path inside a bundle: relative, and never climbing out of the bundle. */
export function readBundleRelPath(r: ArgReader, key: string): string | undefined {
  const p = r.string(key, { required: true });
  if (p === undefined) return undefined;
  const n = posix.normalize(p);
  if (p.startsWith('/') || n === '..' || n.startsWith('../') || n === '.') {
    r.problem(key, `"${key}" must be a file path inside the bundle, like manifests/app.yaml (got "${p}")`);
    return undefined;
  }
  return n;
}

/**
 * Parses a file mode. Strings are octal ("0644", "644", "0o644"); a bare
 * number is read by its digits as octal too, because plan YAML keeps
 * `mode: 0644` as written but a plain `mode: 644` arrives as the number 644.
 */
export function parseMode(v: string | number): number | undefined {
  const s = String(v).trim().replace(/^0o/i, '');
  if (!/^[0-7]{1,4}$/.test(s)) return undefined;
  return parseInt(s, 8);
}

/** Reads mode/owner/group/backup, the attributes shared by file.install and template.render. */
export function readFileAttrs(r: ArgReader, backupDefault: boolean): FileAttrs {
  const rawMode = r.string('mode');
  let mode: number | undefined;
  if (rawMode !== undefined) {
    mode = parseMode(rawMode);
    if (mode === undefined) r.problem('mode', `"mode" must be octal permission bits like "0644" or "0755" (got "${rawMode}")`);
  }
  const owner = readPrincipal(r, 'owner');
  const group = readPrincipal(r, 'group');
  const backup = r.bool('backup', { default: backupDefault }) ?? backupDefault;
  return { mode, owner, group, backup };
}

function readPrincipal(r: ArgReader, key: string): string | undefined {
  const v = r.string(key);
  if (v !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(v)) {
    r.problem(key, `"${key}" must be a name or a numeric id (got "${v}")`);
    return undefined;
  }
  return v;
}

/** Reads `bundle` + `src`, or the inline key (`content`/`template`); exactly one form. */
export function readFileSource(r: ArgReader, inlineKey: string): FileSource | undefined {
  const inline = r.string(inlineKey);
  const hasBundle = r.any('bundle') !== undefined || r.any('src') !== undefined;
  if (inline !== undefined && hasBundle) {
    r.problem(inlineKey, `give either "${inlineKey}" or "bundle" + "src", not both`);
    return undefined;
  }
  if (inline !== undefined) return { content: inline };
  if (!hasBundle) {
    r.problem('', `give "bundle" + "src" (a file from a bundle) or "${inlineKey}" (inline text)`);
    return undefined;
  }
  const bundle = r.string('bundle', { required: true });
  const src = readBundleRelPath(r, 'src');
  return bundle !== undefined && src !== undefined ? { bundle, src } : undefined;
}

/** Schema for `file.install`. */
export const fileInstallSchema = schema<FileInstallArgs>(
  'file.install',
  'Install a file from a bundle or inline content at dest, with mode/owner, atomically (unchanged when it already matches)',
  (r) => {
    const source = readFileSource(r, 'content');
    const dest = readAbsPath(r, 'dest');
    const attrs = readFileAttrs(r, false);
    return { source: source!, dest: dest!, ...attrs };
  },
);
