/**
 * Helm charts, as directories (a dir with Chart.yaml) or packaged `.tgz` (read in memory with
 * the strict tar reader; charts are small). Per chart:
 *   - values.yaml: `image:` strings and `image: {registry, repository, tag, digest}` blocks,
 *     checked whatever `enable:` flags say, since `--set` can switch a component on at install;
 *   - templates: `image:` lines whose `{{ … }}` are resolvable from values and Chart.yaml
 *     (`.Values.a.b`, `.Chart.AppVersion`, `default`, `quote`, `printf "%s:%s"`); the finding
 *     then points at the value in values.yaml, which is what the operator edits. Anything else
 *     (`include`, `tpl`, `with` scopes) is reported as unresolved, not guessed;
 *   - crds/: Kubernetes YAML; subcharts (charts/<dir> or charts/*.tgz) are charts of their own.
 */
import { readFile, stat } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { isMap, isScalar, type Node, type YAMLMap } from 'yaml';
import { ErrorCode, FerryError } from '../../errors.js';
import { TarReader } from '../tar-reader.js';
import { type LintCollector, SourceText } from './collector.js';
import type { Position } from './findings.js';
import { parseYaml, lintYaml } from './yaml-scan.js';

/** A text file in a chart: `path` is relative to the walk (bundle root or archive). */
export interface TextFile {
  path: string;
  display: string;
  text: string;
}

/** Charts are small; a bigger .tgz is some other tarball (CNI plugins, a k3s airgap file) and is not read. */
const MAX_ARCHIVE = 16 * 1024 * 1024;
const MAX_MEMBER = 4 * 1024 * 1024;
const dirOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');

/** Directories holding a Chart.yaml, deepest first (so a file belongs to its innermost chart). */
export function chartRoots(paths: readonly string[]): string[] {
  return paths.filter((p) => p === 'Chart.yaml' || p.endsWith('/Chart.yaml')).map(dirOf).sort((a, b) => b.length - a.length);
}

/** Read a packaged chart's text members; nested `charts/*.tgz` become `outer.tgz!/…` paths. */
export async function readChartArchive(absPath: string, display: string): Promise<TextFile[]> {
  if ((await stat(absPath)).size > MAX_ARCHIVE) return [];
  // Member paths carry the archive path, so they never mix with a chart directory's files.
  return membersOf(await readFile(absPath), display, `${display}!/`);
}

function membersOf(gz: Buffer, display: string, prefix: string): TextFile[] {
  let tar: Buffer;
  try {
    tar = gunzipSync(gz, { maxOutputLength: 4 * MAX_ARCHIVE });
  } catch (e) {
    throw new FerryError(ErrorCode.BundleInvalid, `${display}: not a gzip-compressed chart (${(e as Error).message})`, 'package charts with `helm package`');
  }
  const out: TextFile[] = [];
  const reader = new TarReader((e) => {
    if (e.type !== 'file' || e.size > MAX_MEMBER) return undefined;
    const parts: Buffer[] = [];
    return {
      data: (c) => void parts.push(Buffer.from(c)),
      end: () => {
        const data = Buffer.concat(parts);
        const path = `${prefix}${e.name}`;
        if (/\/charts\/[^/]+\.tgz$/.test(e.name)) out.push(...membersOf(data, `${display}!/${e.name}`, `${path}!/`));
        else if (!data.includes(0)) out.push({ path, display: `${display}!/${e.name}`, text: data.toString('utf8') });
      },
    };
  });
  reader.push(tar);
  reader.end();
  return out;
}

/** Lint every chart among `files` (files outside any chart are ignored). */
export function lintCharts(files: readonly TextFile[], c: LintCollector): void {
  const roots = chartRoots(files.map((f) => f.path));
  const byRoot = new Map<string, TextFile[]>(roots.map((r) => [r, []]));
  for (const f of files) {
    const root = roots.find((r) => r === '' || f.path.startsWith(`${r}/`));
    if (root !== undefined) byRoot.get(root)!.push(f);
  }
  for (const [root, list] of byRoot) lintChart(root, list, c);
}

function lintChart(root: string, files: TextFile[], c: LintCollector): void {
  const rel = (f: TextFile) => (root === '' ? f.path : f.path.slice(root.length + 1));
  const chartYaml = files.find((f) => rel(f) === 'Chart.yaml')!;
  let appVersion: string | undefined;
  const parsed = parseYaml(new SourceText(chartYaml.display, chartYaml.text), c);
  const meta = parsed?.docs[0]?.contents;
  if (isMap(meta)) {
    const v = meta.get('appVersion', true);
    if (isScalar(v) && v.value !== null) appVersion = typeof v.source === 'string' ? v.source : String(v.value);
  }
  const valuesFile = files.find((f) => rel(f) === 'values.yaml');
  const valuesSrc = valuesFile && new SourceText(valuesFile.display, valuesFile.text);
  const values = valuesSrc ? lintYaml(valuesSrc, c, 'values', { appVersion }) : undefined;
  const ctx: TemplateContext = { values, valuesSrc, appVersion };
  for (const f of files) {
    const r = rel(f);
    if (r.startsWith('templates/')) lintTemplate(new SourceText(f.display, f.text), c, ctx);
    else if (r.startsWith('crds/') && /\.ya?ml$/.test(r)) lintYaml(new SourceText(f.display, f.text), c, 'k8s');
  }
}

interface TemplateContext {
  values?: YAMLMap;
  valuesSrc?: SourceText;
  appVersion?: string;
}

interface Resolved {
  text: string;
  /** The values.yaml node the value came from (for the finding position). */
  node?: Node;
}

const IMAGE_LINE = /^([ \t]*(?:-[ \t]+)?image:[ \t]*)(.*?)[ \t]*$/gm;

function lintTemplate(src: SourceText, c: LintCollector, ctx: TemplateContext): void {
  for (const m of src.text.matchAll(IMAGE_LINE)) {
    let value = m[2]!;
    if (value === '' || value.startsWith('#') || value.startsWith('{{/*')) continue;
    const at = src.at(m.index + m[1]!.length);
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    if (!value.includes('{{')) {
      c.image(value, at);
      continue;
    }
    let first: Node | undefined;
    let failed = false;
    const text = value.replace(/\{\{-?\s*(.*?)\s*-?\}\}/g, (_s, expr: string) => {
      const r = resolveExpr(expr, ctx);
      if (!r) failed = true;
      first ??= r?.node;
      return r?.text ?? '';
    });
    if (failed || text.includes('{{')) {
      c.unresolved(value, at, 'the template uses helpers or values lint cannot evaluate');
      continue;
    }
    const pos: Position = first && ctx.valuesSrc && first.range ? ctx.valuesSrc.at(first.range[0]) : at;
    c.image(text.replace(/^\/+/, '').replace(/\/{2,}/g, '/'), pos);
  }
  // URLs outside comments; `{{ }}` hosts count as variables and are skipped by the collector.
  const noComments = src.text.replace(/^[ \t]*#.*$|\{\{-?\s*\/\*[\s\S]*?\*\/\s*-?\}\}/gm, (s) => s.replace(/[^\n]/g, ' '));
  c.urls(src, noComments, 0);
}

/** Resolve one `{{ … }}` body, or undefined. */
function resolveExpr(expr: string, ctx: TemplateContext): Resolved | undefined {
  const stages = expr.split('|').map((s) => s.trim());
  let cur = resolveTerm(stages[0]!, ctx);
  for (const st of stages.slice(1)) {
    const [fn, ...args] = st.split(/\s+/);
    if (fn === 'default') {
      if (!cur || cur.text === '') cur = resolveTerm(args.join(' '), ctx);
    } else if (!['quote', 'squote', 'toString', 'trim'].includes(fn!) || !cur) return undefined;
  }
  return cur;
}

function resolveTerm(term: string, ctx: TemplateContext): Resolved | undefined {
  const t = term.replace(/^\((.*)\)$/, '$1').trim();
  const lit = /^"([^"]*)"$/.exec(t);
  if (lit) return { text: lit[1]! };
  if (t === '.Chart.AppVersion' || t === '$.Chart.AppVersion') return ctx.appVersion !== undefined ? { text: ctx.appVersion } : undefined;
  const v = /^\$?\.Values((?:\.[A-Za-z0-9_-]+)+)$/.exec(t);
  if (v) {
    const node = ctx.values?.getIn(v[1]!.slice(1).split('.'), true) as Node | undefined;
    if (node === undefined) return { text: '' }; // unset: `default` may supply it
    if (!isScalar(node)) return undefined;
    if (node.value === null || node.value === undefined) return { text: '', node };
    return { text: node.type === 'PLAIN' && typeof node.source === 'string' ? node.source : String(node.value), node };
  }
  const pf = /^printf\s+"([^"]*)"\s+(.*)$/.exec(t);
  if (pf) {
    const args = pf[2]!.match(/\([^)]*\)|"[^"]*"|\S+/g) ?? [];
    const parts = args.map((a) => (a.startsWith('(') ? resolveExpr(a.slice(1, -1), ctx) : resolveTerm(a, ctx)));
    if (parts.some((p) => !p)) return undefined;
    let k = 0;
    return { text: pf[1]!.replace(/%[sv]/g, () => parts[k++]?.text ?? ''), node: parts.find((p) => p!.node)?.node };
  }
  return undefined;
}
