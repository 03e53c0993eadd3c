/**
 * Plan specifics (see common/src/plan/parse.ts for the format). In plans:
 *   - `image.import` names image *tars*, not refs: `images: [images/docker.io-kubeedge-*.tar]`.
 *     When the step's `bundle:` alias is this bundle (per the plan's `bundles:` map), every
 *     path or glob must match a file here — seed 000's `for tar in images/docker.io-kubeedge-*.tar`
 *     that silently imported nothing becomes an error. Items that are refs are checked as refs;
 *   - commands (`command`, `argv`, `unless`, `onlyIf`, `script`, `run`, `shell`) are a shell
 *     string or an argv list; both are checked like install scripts.
 */
import { isMap, isScalar, isSeq, type Document, type Node, type Scalar, type YAMLMap } from 'yaml';
import { globToRegExp } from '../bundle-config.js';
import type { LintCollector, SourceText } from './collector.js';
import type { Position } from './findings.js';
import { lintCommands } from './shell-rules.js';
import type { ShellWord } from './shell-scan.js';

/** Keys whose value is a command (shell string or argv list) in a plan. */
export const PLAN_COMMAND_KEYS = new Set(['command', 'argv', 'unless', 'onlyIf', 'script', 'run', 'shell']);

const TAR_PATH = /\.(?:tar|tar\.gz|tgz|tar\.zst)$|\*/;

/** This bundle, as the plan scanner needs it. */
export interface SelfBundle {
  name?: string;
  files: readonly string[];
}

/** Aliases in the plan's `bundles:` that name this bundle (`edge: kubeedge-edge:1.22.0` or `[{as, name}]`). */
export function selfAliases(doc: Pick<Document, 'contents'>, self?: SelfBundle): Set<string> {
  const out = new Set<string>();
  const b = isMap(doc.contents) ? doc.contents.get('bundles', true) : undefined;
  if (!self?.name || !b) return out;
  if (isMap(b)) {
    for (const p of b.items) {
      if (isScalar(p.key) && isScalar(p.value) && String(p.value.value).split(':')[0] === self.name) out.add(String(p.key.value));
    }
  } else if (isSeq(b)) {
    for (const item of b.items) {
      if (isMap(item) && item.get('name') === self.name && typeof item.get('as') === 'string') out.add(item.get('as') as string);
    }
  }
  return out;
}

/**
 * An `images:` list item. Returns true if it was a bundle path (handled here), false if the
 * caller should treat it as an image reference.
 */
export function planImageItem(item: Scalar, step: YAMLMap, aliases: Set<string>, self: SelfBundle | undefined, c: LintCollector, at: Position): boolean {
  const text = String(item.value ?? '');
  if (!text.includes('/') || !TAR_PATH.test(text)) return false;
  const alias = step.get('bundle');
  if (!self || typeof alias !== 'string' || !aliases.has(alias) || /\{\{/.test(text)) return true;
  const re = globToRegExp(text);
  if (!self.files.some((f) => re.test(f))) {
    c.add({
      severity: 'error', rule: 'bundle-path-missing', ...at,
      message: `${text} matches no file in this bundle (bundle alias "${alias}")`,
      hint: 'add the image tars under images/, or fix the path; a glob that matches nothing would import nothing',
    });
  }
  return true;
}

/** An argv list (`argv: [ctr, -n, k8s.io, images, pull, …]`): one command whose words are the items. */
export function lintArgv(src: SourceText, c: LintCollector, items: readonly Node[]): void {
  const words: ShellWord[] = [];
  for (const n of items) {
    if (!isScalar(n) || !n.range || (typeof n.value !== 'string' && typeof n.value !== 'number')) return;
    const quoted = n.type === 'QUOTE_DOUBLE' || n.type === 'QUOTE_SINGLE';
    const text = String(n.value);
    words.push({ text, start: n.range[0] + (quoted ? 1 : 0), end: n.range[1] - (quoted ? 1 : 0), expand: /\{\{|\$/.test(text) });
  }
  lintCommands(src, c, { commands: [{ words }], heredocs: [] });
}
