/**
 * Parsing YAML text with positions for messages, and writing an edited
 * document back so that only the edited lines change: the document is
 * rendered before and after the edit, and the difference is replayed onto
 * the original text (three-way merge). The result is re-parsed and must
 * equal the intended content, else the plain rendering is used, else nothing
 * is written.
 */
import { ErrorCode } from '../../../../common/src/errors.js';
import { isDeepStrictEqual } from 'node:util';
import { isMap, isSeq, isScalar, LineCounter, parseAllDocuments, visit, type Document, type ToStringOptions } from 'yaml';
import type { PosFn } from './yaml-tree.js';
import { StepError } from '../step-error.js';
import { merge3 } from './text-diff.js';

/** A parsed YAML stream and where its offsets are. */
export interface ParsedYaml {
  docs: Document[];
  pos: PosFn;
  lines: LineCounter;
}

/**
 * Parses every document in `text`. Syntax errors throw STEP_YAML_INVALID
 * naming line:col via `pos` (which maps offsets to the file, even for YAML
 * nested in a ConfigMap).
 */
export function parseYaml(text: string, pos: (line: number, col: number) => string, what: string): ParsedYaml {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [];
  for (const d of list) {
    const e = d.errors[0];
    if (e) {
      const lp = e.linePos?.[0] ?? { line: 1, col: 1 };
      const reason = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      throw new StepError(ErrorCode.StepYamlInvalid, `${pos(lp.line, lp.col)}: ${what} is not valid YAML: ${reason}`,
        'fix the file by hand (or restore it from a backup) and run the step again; nothing was changed');
    }
  }
  return { docs: list, lines, pos: (off) => { const p = lines.linePos(off); return pos(p.line, p.col); } };
}

/** Rendering options that match the file's own indentation and list style, and never fold lines. */
export function styleOf(docs: Document[], text: string): ToStringOptions {
  const col = (off: number) => off - text.lastIndexOf('\n', off - 1) - 1;
  let indent: number | undefined, indentSeq: boolean | undefined;
  for (const d of docs) {
    visit(d, {
      Pair(_, pair) {
        const k = isScalar(pair.key) ? pair.key.range : undefined;
        const v = pair.value;
        if (!k) return;
        if (indent === undefined && isMap(v) && !v.flow && isScalar(v.items[0]?.key) && v.items[0].key.range) {
          const d2 = col(v.items[0].key.range[0]) - col(k[0]);
          if (d2 > 0) indent = d2;
        }
        if (indentSeq === undefined && isSeq(v) && !v.flow && v.range) indentSeq = col(v.range[0]) > col(k[0]);
      },
    });
  }
  return { indent: indent ?? 2, indentSeq: indentSeq ?? true, lineWidth: 0, minContentWidth: 0 };
}

/** Renders a stream of documents. */
export function render(docs: Document[], opts: ToStringOptions): string {
  return docs.map((d) => d.toString(opts)).join('');
}

/** True when `text` parses cleanly to exactly `expected` (one JS value per document). */
export function parsesTo(text: string, expected: unknown[]): boolean {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [];
  if (list.length !== expected.length || list.some((d) => d.errors.length > 0)) return false;
  return list.every((d, i) => isDeepStrictEqual(d.toJS(), expected[i]));
}

/**
 * The text to write for edited documents: `original` with only the edited
 * lines changed when that verifies, else the full rendering when that
 * verifies, else a STEP_RESULT_INVALID error (nothing written).
 */
export function writeBack(original: string, before: string, docs: Document[], opts: ToStringOptions, what: string): { text: string; relaid: boolean } {
  const after = render(docs, opts);
  const expected = docs.map((d) => d.toJS());
  // Renders always end in a newline; merge with one so the last original line lines up, then take it off again.
  const noEol = original !== '' && !original.endsWith('\n');
  let merged = merge3(before, noEol ? `${original}\n` : original, after);
  if (noEol && merged.endsWith(`${original.slice(original.lastIndexOf('\n') + 1)}\n`)) merged = merged.slice(0, -1);
  if (parsesTo(merged, expected)) return { text: merged, relaid: false };
  if (parsesTo(after, expected)) return { text: after, relaid: true };
  throw new StepError(ErrorCode.StepResultInvalid, `refusing to write ${what}: the edited YAML does not read back as the intended content`,
    'this is a bug in yaml.edit; the file was not changed — report it with the file and the step');
}
