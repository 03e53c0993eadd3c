/**
 * Image references and URLs in YAML: Kubernetes manifests and CRDs (every document of a
 * multi-document file; any `image:` string, so containers, initContainers, ephemeral
 * containers and static pods are all covered), Ferry plans (`image:` / `images:` anywhere,
 * plus shell in `script:`/`run:`/`shell:` steps) and Helm values (`image:` blocks).
 *
 * Working on the parsed document rather than lines means comments never count and positions
 * point at the value itself.
 */
import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments, type Node, type Scalar, type YAMLMap } from 'yaml';
import { type LintCollector, SourceText } from './collector.js';
import { PLAN_COMMAND_KEYS, type SelfBundle, lintArgv, planImageItem, selfAliases } from './plan-scan.js';
import { lintShell } from './shell-rules.js';

/** How to read a YAML file. */
export type YamlMode = 'k8s' | 'plan' | 'values';

/** Keys whose subtree is documentation, not configuration: URLs there are links to read. */
const DOC_KEYS = new Set(['description', 'annotations', 'home', 'icon', 'sources', 'email', 'externalDocs', '$schema', '$id', 'documentation', 'docs']);

/** A composed image from a values block, and where its repository is written. */
export interface ValuesImage {
  ref: string;
  node: Node;
}

/** Parse all documents; syntax errors become `yaml-invalid` findings. Returns undefined on error. */
export function parseYaml(src: SourceText, c: LintCollector): { docs: ReturnType<typeof parseAllDocuments>; lc: LineCounter } | undefined {
  const lc = new LineCounter();
  const docs = parseAllDocuments(src.text, { lineCounter: lc, uniqueKeys: false });
  const list = Array.isArray(docs) ? docs : [];
  const err = list.flatMap((d) => d.errors)[0];
  if (err) {
    c.add({
      severity: 'error', rule: 'yaml-invalid', file: src.file, ...lc.linePos(err.pos[0]),
      message: `YAML does not parse: ${err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      hint: 'fix the syntax; a manifest that does not parse cannot be applied on the host, and lint cannot check its images',
    });
    return undefined;
  }
  return { docs: list, lc };
}

function str(n: unknown): string | undefined {
  if (!isScalar(n)) return undefined;
  // Plain scalars keep their source text so `tag: 1.10` stays "1.10", not 1.1.
  if (n.type === 'PLAIN' && typeof n.source === 'string') return n.source;
  return typeof n.value === 'string' || typeof n.value === 'number' ? String(n.value) : undefined;
}

/**
 * Compose `image: {registry, repository, tag, digest}` (Helm/Bitnami style; `repo` and `name`
 * accepted for repository). A missing tag falls back to `defaultTag` (the chart's appVersion,
 * as most templates do with `| default .Chart.AppVersion`).
 */
export function imageFromBlock(m: YAMLMap, defaultTag?: string): ValuesImage | undefined {
  const get = (k: string) => m.items.find((p) => isScalar(p.key) && p.key.value === k)?.value as Node | undefined;
  const repoNode = get('repository') ?? get('repo') ?? get('name');
  const repo = str(repoNode);
  if (!repo || !repoNode) return undefined;
  const registry = str(get('registry'));
  const tag = str(get('tag')) || defaultTag;
  const digest = str(get('digest'));
  const ref = `${registry ? `${registry.replace(/\/+$/, '')}/` : ''}${repo}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
  return { ref, node: repoNode };
}

/** Scan one YAML file. For `values`, returns the parsed documents for template resolution. */
export function lintYaml(src: SourceText, c: LintCollector, mode: YamlMode, opts: { appVersion?: string; self?: SelfBundle } = {}): YAMLMap | undefined {
  const parsed = parseYaml(src, c);
  if (!parsed) return undefined;
  const at = (n: Node) => ({ file: src.file, ...parsed.lc.linePos(n.range?.[0] ?? 0) });
  const use = (ref: string, n: Node) => {
    if (/\{\{|\$\{|\$[A-Za-z_]|%\{/.test(ref)) c.unresolved(ref, at(n), 'it contains a template or variable');
    else if (ref.trim() !== '') c.image(ref.trim(), at(n));
  };

  let aliases = new Set<string>();
  const walk = (n: unknown, inDocs: boolean): void => {
    if (isMap(n)) {
      for (const p of n.items) {
        const k = isScalar(p.key) ? String(p.key.value) : '';
        const v = p.value as Node | null;
        if (!v) continue;
        if (k === 'image' && isScalar(v)) {
          const s = str(v);
          if (s !== undefined) use(s, v);
          continue;
        }
        if (k === 'image' && isMap(v) && mode !== 'k8s') {
          const img = imageFromBlock(v, opts.appVersion);
          if (img) use(img.ref, img.node);
        }
        if (k === 'images' && isSeq(v) && mode === 'plan') {
          for (const item of v.items) {
            if (isScalar(item)) {
              if (!planImageItem(item, n, aliases, opts.self, c, at(item as Node))) use(str(item) ?? '', item as Node);
            } else if (isMap(item)) {
              const img = imageFromBlock(item);
              if (img) use(img.ref, img.node);
            }
          }
          continue;
        }
        if (mode === 'plan' && PLAN_COMMAND_KEYS.has(k)) {
          if (isScalar(v) && typeof v.value === 'string') {
            shellScalar(src, c, v);
            continue;
          }
          if (isSeq(v) && str(v.items[1]) !== '-c') {
            lintArgv(src, c, v.items as Node[]);
            continue;
          }
        }
        walk(v, inDocs || DOC_KEYS.has(k));
      }
    } else if (isSeq(n)) {
      const items = n.items as Node[];
      items.forEach((item, i) => {
        // `command: [sh, -c, "…"]`: the script is shell.
        if (mode !== 'values' && i > 0 && isScalar(item) && typeof item.value === 'string' && str(items[i - 1]) === '-c' && /sh$/.test(str(items[0]) ?? '')) {
          shellScalar(src, c, item);
        } else walk(item, inDocs);
      });
    } else if (isScalar(n) && typeof n.value === 'string' && !inDocs && n.range) {
      // Find each URL in the source slice so the column points at it, not at the scalar start.
      c.urls(src, src.text.slice(n.range[0], n.range[1]), n.range[0]);
    }
  };
  let values: YAMLMap | undefined;
  for (const d of parsed.docs) {
    aliases = mode === 'plan' ? selfAliases(d, opts.self) : aliases;
    walk(d.contents, false);
    if (mode === 'values' && isMap(d.contents)) values ??= d.contents;
  }
  return values;
}

/**
 * Shell inside a YAML scalar: scan the scalar's own source range, so offsets (and therefore
 * lines and columns) are those of the file. Block-scalar headers (`|`, `>-`) and quotes are
 * blanked first; they are not shell.
 */
function shellScalar(src: SourceText, c: LintCollector, n: Scalar): void {
  if (!n.range) return;
  const [from, to] = n.range;
  let text = src.text;
  if (n.type === 'BLOCK_LITERAL' || n.type === 'BLOCK_FOLDED') {
    const eol = text.indexOf('\n', from);
    text = text.slice(0, from) + ' '.repeat((eol < 0 ? to : eol) - from) + text.slice(eol < 0 ? to : eol);
  } else if (n.type === 'QUOTE_DOUBLE' || n.type === 'QUOTE_SINGLE') {
    text = `${text.slice(0, from)} ${text.slice(from + 1, to - 1)} ${text.slice(to)}`;
  }
  lintShell(new SourceText(src.file, text), c, from, to);
}
