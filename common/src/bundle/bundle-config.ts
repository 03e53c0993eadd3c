/**
 * `ferry-bundle.yaml`: optional settings at the root of an offline-package directory.
 *
 *   name: kubeedge-cloud            # bundle name; `--name` overrides
 *   version: 1.22.0                 # `--version` overrides
 *   arch: [amd64, arm64]            # `--arch` overrides; default: the images' architectures
 *   rewrites:                       # where hosts will find images (see lint/image-ref.ts)
 *     - from: docker.io/sealerio/
 *       to: sea.hub:5000/sealerio/
 *   lint:
 *     internalHosts: [files.site.internal, "*.corp.example", "10.20.0.5:8080"]
 *     ignore:
 *       - path: "scripts/legacy/**"
 *         rules: [network-command]  # omit `rules` to silence every rule for those paths
 *
 * Validation collects every problem with its file:line:col instead of stopping at the first,
 * so one run tells the operator everything to fix. Unknown keys are problems too: a typo such
 * as `rewrite:` would otherwise silently disable the rules the operator thinks are in force.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node, type Pair } from 'yaml';
import { ErrorCode, FerryError } from '../errors.js';
import { archProblem } from '../arch.js';
import { LINT_RULES, type LintRule, type Position } from './lint/findings.js';
import { compileRewrite, type CompiledRewrite } from './lint/image-ref.js';
import type { RewriteRule } from './manifest.js';

export { canonicalImageRef, compileRewrite, formatImageRef, parseImageRef, rewriteImageRef } from './lint/image-ref.js';

/** File name looked up at the bundle root. */
export const BUNDLE_CONFIG_FILE = 'ferry-bundle.yaml';

/** `lint.ignore` entry: rules (all when absent) silenced for paths matching a glob. */
export interface LintIgnore {
  path: string;
  rules?: LintRule[];
}

/** Parsed ferry-bundle.yaml. Absent fields stay undefined so CLI flags and defaults can fill them. */
export interface BundleConfig {
  name?: string;
  version?: string;
  arch?: string[];
  rewrites: RewriteRule[];
  lint: { internalHosts: string[]; ignore: LintIgnore[] };
}

/** A problem in the config file. */
export interface ConfigProblem extends Position {
  message: string;
}

const NAME = { re: /^[a-z0-9][a-z0-9._-]{0,62}$/, says: 'use lowercase letters, digits, ".", "_" and "-" (at most 63, starting with a letter or digit)' };
const VERSION = { re: /^[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}$/, says: 'use letters, digits, ".", "+", "_" and "-" (e.g. 1.22.0 or 1.22.0-k3s1)' };
const HOST = {
  re: /^(?:\*\.)?[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$/,
  says: 'use host, host:port, *.domain or [ipv6]:port (no scheme, no path)',
};

/** An empty config: what a directory without ferry-bundle.yaml has. */
export function emptyBundleConfig(): BundleConfig {
  return { rewrites: [], lint: { internalHosts: [], ignore: [] } };
}

/** Parse and validate config text. Never throws; problems are returned with positions. */
export function parseBundleConfig(text: string, file = BUNDLE_CONFIG_FILE): { config: BundleConfig; problems: ConfigProblem[] } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true });
  const config = emptyBundleConfig();
  const problems: ConfigProblem[] = [];
  const at = (offset: number, message: string) => problems.push({ file, ...lc.linePos(offset), message });
  const atNode = (n: Node | Pair | null | undefined, message: string) => at(posOf(n), message);

  for (const e of doc.errors) at(e.pos[0], e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''));
  if (doc.errors.length > 0 || doc.contents === null) return { config, problems };
  if (!isMap(doc.contents)) {
    atNode(doc.contents, 'expected a mapping with name, version, arch, rewrites, lint');
    return { config, problems };
  }

  const str = (n: unknown, what: string, re?: { re: RegExp; says: string }): string | undefined => {
    // Plain scalars keep their source text, so `version: 1.10` stays "1.10", not 1.1.
    const v = isScalar(n) ? (typeof n.source === 'string' && n.type === 'PLAIN' ? n.source : n.value) : undefined;
    if (typeof v !== 'string' && typeof v !== 'number') return void atNode(n as Node, `${what} must be a string`);
    const s = String(v);
    if (re && !re.re.test(s)) return void atNode(n as Node, `${what} ${JSON.stringify(s)} is not valid: ${re.says}`);
    return s;
  };
  const seq = (n: unknown, what: string): Node[] => {
    if (isSeq(n)) return n.items as Node[];
    atNode(n as Node, `${what} must be a list`);
    return [];
  };
  const keys = (m: unknown, allowed: string[], where: string): Map<string, Pair> => {
    const out = new Map<string, Pair>();
    if (!isMap(m)) {
      atNode(m as Node, `${where} must be a mapping`);
      return out;
    }
    for (const p of m.items) {
      const k = isScalar(p.key) ? String(p.key.value) : '';
      if (allowed.includes(k)) out.set(k, p);
      else atNode(p, `unknown key ${JSON.stringify(k)} in ${where} (allowed: ${allowed.join(', ')})`);
    }
    return out;
  };

  const top = keys(doc.contents, ['name', 'version', 'arch', 'rewrites', 'lint'], 'ferry-bundle.yaml');
  if (top.has('name')) config.name = str(top.get('name')!.value, 'name', NAME);
  if (top.has('version')) config.version = str(top.get('version')!.value, 'version', VERSION);
  if (top.has('arch')) {
    config.arch = [];
    for (const n of seq(top.get('arch')!.value, 'arch')) {
      const a = str(n, 'arch');
      if (a === undefined) continue;
      const problem = archProblem(a);
      if (problem) atNode(n, problem);
      else config.arch.push(a);
    }
  }
  const compiled: CompiledRewrite[] = [];
  for (const n of top.has('rewrites') ? seq(top.get('rewrites')!.value, 'rewrites') : []) {
    const r = keys(n, ['from', 'to'], 'a rewrite rule');
    if (!r.has('from') || !r.has('to')) {
      if (isMap(n)) atNode(n, 'a rewrite rule needs both "from" and "to"');
      continue;
    }
    const from = str(r.get('from')!.value, 'from');
    const to = str(r.get('to')!.value, 'to');
    if (from === undefined || to === undefined) continue;
    const c = compileRewrite({ from, to });
    if (typeof c === 'string') {
      atNode(n, `rewrite rule: ${c}`);
      continue;
    }
    const key = c.kind === 'prefix' ? c.from : JSON.stringify(c.from);
    if (compiled.some((o) => (o.kind === 'prefix' ? o.from : JSON.stringify(o.from)) === key)) {
      atNode(n, `rewrite rule for ${JSON.stringify(from)} repeats an earlier rule (the first matching rule wins)`);
      continue;
    }
    compiled.push(c);
    config.rewrites.push({ from, to });
  }
  if (top.has('lint')) parseLint(top.get('lint')!.value, config, { str, seq, keys, atNode });
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  return { config, problems };
}

interface Helpers {
  str(n: unknown, what: string, re?: { re: RegExp; says: string }): string | undefined;
  seq(n: unknown, what: string): Node[];
  keys(m: unknown, allowed: string[], where: string): Map<string, Pair>;
  atNode(n: Node | Pair | null | undefined, message: string): void;
}

function parseLint(n: unknown, config: BundleConfig, h: Helpers): void {
  const l = h.keys(n, ['internalHosts', 'ignore'], 'lint');
  for (const hn of l.has('internalHosts') ? h.seq(l.get('internalHosts')!.value, 'lint.internalHosts') : []) {
    const host = h.str(hn, 'internal host', HOST);
    if (host !== undefined) config.lint.internalHosts.push(host.toLowerCase());
  }
  for (const ig of l.has('ignore') ? h.seq(l.get('ignore')!.value, 'lint.ignore') : []) {
    const m = h.keys(ig, ['path', 'rules'], 'a lint.ignore entry');
    if (!m.has('path')) {
      if (isMap(ig)) h.atNode(ig, 'a lint.ignore entry needs "path" (a glob such as "scripts/**/*.sh")');
      continue;
    }
    const path = h.str(m.get('path')!.value, 'path');
    if (path === undefined) continue;
    const entry: LintIgnore = { path };
    if (m.has('rules')) {
      entry.rules = [];
      for (const rn of h.seq(m.get('rules')!.value, 'rules')) {
        const r = h.str(rn, 'rule');
        if (r === undefined) continue;
        if ((LINT_RULES as readonly string[]).includes(r)) entry.rules.push(r as LintRule);
        else h.atNode(rn, `unknown lint rule ${JSON.stringify(r)} (rules: ${LINT_RULES.join(', ')})`);
      }
    }
    config.lint.ignore.push(entry);
  }
}

function posOf(n: Node | Pair | null | undefined): number {
  if (!n) return 0;
  if ('range' in n && n.range) return n.range[0];
  const p = n as Pair;
  return posOf(p.key as Node) || posOf(p.value as Node);
}

/** Architecture names are checked in one place, shared with host facts (common/src/arch.ts). */
export { archProblem };

/**
 * Read `DIR/ferry-bundle.yaml`. A missing file is an empty config, not an error: most offline
 * packages start life without one and only need `--name/--version`.
 */
export async function loadBundleConfig(dir: string): Promise<{ config: BundleConfig; problems: ConfigProblem[]; found: boolean }> {
  let text: string;
  try {
    text = await readFile(join(dir, BUNDLE_CONFIG_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { config: emptyBundleConfig(), problems: [], found: false };
    throw e;
  }
  return { ...parseBundleConfig(text), found: true };
}

/** Throws one FerryError listing every problem (file:line:col each), or returns the config. */
export function assertBundleConfig(r: { config: BundleConfig; problems: ConfigProblem[] }): BundleConfig {
  if (r.problems.length === 0) return r.config;
  const list = r.problems.map((p) => `  ${p.file}:${p.line}:${p.col}: ${p.message}`).join('\n');
  throw new FerryError(ErrorCode.Config, `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} in ${BUNDLE_CONFIG_FILE}:\n${list}`,
    `fix ${BUNDLE_CONFIG_FILE} at the bundle root (\`ferry bundle lint DIR\` shows the same list)`);
}

/**
 * Path glob for `lint.ignore`: `*` and `?` stay within one path segment, `**` spans segments
 * (`a/**` also matches `a` itself), everything else is literal. Paths are bundle-relative POSIX.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      const slash = glob[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re.replace(/\/\.\*$/, '(?:/.*)?')}$`);
}
