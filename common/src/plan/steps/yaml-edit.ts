/**
 * `yaml.edit`: change keys in a YAML file (or in a YAML document held in a
 * ConfigMap manifest's `data.<key>`) without disturbing the rest of it:
 * comments, key order and layout stay as they were. Replaces the seeds'
 * `sed -i '/edgeStream:/,/enable:/ s/false/true/'`.
 */
import { schema, type ArgReader } from '../step-schema.js';
import { readAbsPath } from './file-install.js';

/** A path into a YAML document: mapping keys and sequence indexes. */
export type YamlPath = Array<string | number>;

/** Parsed args of `yaml.edit`. */
export interface YamlEditArgs {
  /** Absolute host path of the YAML file (or of the ConfigMap manifest). */
  file: string;
  /** Edit the YAML text in `data.<key>` of the ConfigMap in `file` instead of the file itself. */
  configMap?: { key: string };
  /** Set a value at a path, creating missing mappings on the way. */
  set: Array<{ path: YamlPath; value: unknown }>;
  /** Deep-merge a mapping into the mapping at a path (created when missing). */
  merge: Array<{ path: YamlPath; value: Record<string, unknown> }>;
  /** Remove the key or item at a path; a path that is already absent is fine. */
  delete: YamlPath[];
  /** Keep a timestamped copy of the file before changing it; default true. */
  backup: boolean;
}

const KEY = /[^.[\]]+/y;
const INDEX = /\[(\d+)\]/y;
const QUOTED = /\[(?:"((?:[^"\\]|\\.)*)"|'([^']*)')\]/y;

/**
 * Parses `modules.edgeStream.enable`, `a.b[0].c` and `data["cloudcore.yaml"]`
 * (brackets with quotes for keys that hold dots). `.` alone is the document
 * root. Throws an Error whose message says where the path is malformed.
 */
export function parseYamlPath(text: string): YamlPath {
  if (text === '.') return [];
  const out: YamlPath = [];
  let pos = 0;
  const at = (re: RegExp) => { re.lastIndex = pos; const m = re.exec(text); if (m) pos = re.lastIndex; return m; };
  while (pos < text.length) {
    const idx = at(INDEX);
    if (idx) { out.push(Number(idx[1])); continue; }
    const q = at(QUOTED);
    if (q) { out.push(q[1] !== undefined ? JSON.parse(`"${q[1]}"`) as string : q[2]!); continue; }
    if (out.length > 0) {
      if (text[pos] !== '.') throw new Error(`expected "." or "[" at character ${pos + 1} of "${text}"`);
      pos++;
    }
    const key = at(KEY);
    if (!key) throw new Error(`empty key at character ${pos + 1} of "${text}"; quote keys with dots as ["a.b"]`);
    out.push(key[0]);
  }
  if (out.length === 0) throw new Error('the path is empty; write keys separated by dots, like modules.edgeStream.enable');
  return out;
}

/** Formats a path the way parseYamlPath reads it (for messages). */
export function formatYamlPath(path: YamlPath): string {
  if (path.length === 0) return '.';
  return path.map((s, i) => {
    if (typeof s === 'number') return `[${s}]`;
    if (/^[^.[\]]+$/.test(s)) return i === 0 ? s : `.${s}`;
    return `[${JSON.stringify(s)}]`;
  }).join('');
}

function readPath(r: ArgReader, allowRoot: boolean): YamlPath | undefined {
  const text = r.string('path', { required: true });
  if (text === undefined) return undefined;
  try {
    const p = parseYamlPath(text);
    if (p.length === 0 && !allowRoot) { r.problem('path', 'the document root "." can only be a merge target'); return undefined; }
    return p;
  } catch (e) {
    r.problem('path', `bad path: ${(e as Error).message}`);
    return undefined;
  }
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readConfigMap(r: ArgReader): { key: string } | undefined {
  const v = r.any('configMap');
  if (v === undefined) return undefined;
  if (!isMapping(v) || typeof v.key !== 'string' || !v.key || Object.keys(v).some((k) => k !== 'key')) {
    r.problem('configMap', '"configMap" must be a mapping with one entry, key: the data key holding the YAML (e.g. cloudcore.yaml)');
    return undefined;
  }
  return { key: v.key };
}

/** Schema for `yaml.edit`. */
export const yamlEditSchema = schema<YamlEditArgs>(
  'yaml.edit',
  'Set, merge or delete keys in a YAML file or a ConfigMap data key, keeping comments and layout, with a backup (idempotent)',
  (r) => {
    const file = readAbsPath(r, 'file');
    const configMap = readConfigMap(r);
    const set = r.objects('set', (e) => {
      const path = readPath(e, false);
      const value = e.any('value', { required: true });
      return path && value !== undefined ? { path, value } : undefined;
    }) ?? [];
    const merge = r.objects('merge', (e) => {
      const path = readPath(e, true);
      const value = e.any('value', { required: true });
      if (value !== undefined && !isMapping(value)) { e.problem('value', 'a merge value must be a mapping (key: value lines)'); return undefined; }
      return path && value !== undefined ? { path, value: value as Record<string, unknown> } : undefined;
    }) ?? [];
    const del = r.objects('delete', (e) => readPath(e, false)) ?? [];
    if (set.length + merge.length + del.length === 0 && r.problems.length === 0) {
      r.problem('', 'nothing to edit: give at least one of "set", "merge" or "delete"');
    }
    return { file: file!, configMap, set, merge, delete: del, backup: r.bool('backup', { default: true }) ?? true };
  },
);
