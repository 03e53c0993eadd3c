/**
 * `yaml.edit` on the host: edits keys in a YAML file, or in the YAML held by
 * a ConfigMap manifest's data key, changing only the lines that must change.
 * Idempotent (compares values, not text), check mode shows the diff, a
 * backup is taken only when something changes, and the write is atomic with
 * the file's own mode and owner.
 */
import { readFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { isMap, isScalar, parseDocument, Scalar, type Document } from 'yaml';
import { ErrorCode } from '../../../common/src/errors.js';
import type { YamlEditArgs } from '../../../common/src/plan/steps/yaml-edit.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { writeFileAtomicAsync } from '../../../common/src/secure-fs.js';
import { makeBackup, statIfExists } from './util/file-ops.js';
import { hostPath, realTarget, showHost } from './util/host-path.js';
import { guarded, StepError } from './step-error.js';
import { unifiedDiff } from './util/text-diff.js';
import { describeNode, TreeEditor, type TreeChange } from './util/yaml-tree.js';
import { parseYaml, render, styleOf, writeBack } from './util/yaml-text.js';

type LinePos = (line: number, col: number) => string;

interface Edited { text: string; changes: TreeChange[]; relaid: boolean }

/** Applies the step's edits to one YAML text; undefined when it already has the wanted values. */
function editText(text: string, args: YamlEditArgs, pos: LinePos, what: string): Edited | undefined {
  const parsed = parseYaml(text, pos, what);
  const docs: Document[] = parsed.docs.length ? parsed.docs : [parseDocument(text)];
  if (docs.length > 1) {
    throw new StepError(ErrorCode.InvalidArgument, `${what} holds ${docs.length} YAML documents; yaml.edit edits single-document files`,
      'for a ConfigMap manifest use "configMap: {key: ...}"; otherwise split the file');
  }
  const doc = docs[0]!;
  const opts = styleOf(docs, text);
  const before = render(docs, opts);
  const beforeJS = doc.toJS();
  const ed = new TreeEditor(doc, parsed.pos);
  // Fixed order: merges lay down mappings, sets override single keys, deletes come last.
  for (const m of args.merge) ed.merge(m.path, m.value);
  for (const s of args.set) ed.set(s.path, s.value);
  for (const d of args.delete) ed.delete(d);
  if (isDeepStrictEqual(doc.toJS(), beforeJS)) return undefined;
  const out = writeBack(text, before, docs, opts, what);
  return { text: out.text, changes: ed.changes, relaid: out.relaid };
}

/** Edits the YAML inside `data.<key>` of the ConfigMap in a manifest file. */
function editConfigMap(text: string, args: YamlEditArgs, shown: string): Edited | undefined {
  const key = args.configMap!.key;
  const outer = parseYaml(text, (l, c) => `${shown}:${l}:${c}`, shown);
  const holders = outer.docs.filter((d) => { const data = isMap(d.contents) ? d.get('data', true) : undefined; return isMap(data) && data.has(key); });
  if (holders.length !== 1) {
    const cms = outer.docs.filter((d) => d.get('kind') === 'ConfigMap');
    const keys = cms.flatMap((d) => { const data = d.get('data', true); return isMap(data) ? data.items.map((p) => String(isScalar(p.key) ? p.key.value : p.key)) : []; });
    throw new StepError(ErrorCode.NotFound, holders.length === 0
      ? `${shown} has no ConfigMap with data key "${key}" (${cms.length ? `data keys found: ${keys.join(', ') || 'none'}` : 'no ConfigMap in the file'})`
      : `${shown} has ${holders.length} documents with data key "${key}"; yaml.edit needs exactly one`,
    'check "file" and "configMap.key" in the step');
  }
  const doc = holders[0]!;
  const node = doc.getIn(['data', key], true);
  if (!isScalar(node) || typeof node.value !== 'string') {
    throw new StepError(ErrorCode.InvalidArgument, `data["${key}"] in ${shown} is ${describeNode(node)}, not YAML text`, 'check "configMap.key"');
  }
  const outerOpts = styleOf(outer.docs, text);
  const outerBefore = render(outer.docs, outerOpts);
  const edited = editText(node.value, args, innerPos(node, outer.lines.linePos(node.range![0]).line, text, shown, key), `data["${key}"] in ${shown}`);
  if (!edited) return undefined;
  node.value = edited.text;
  const out = writeBack(text, outerBefore, outer.docs, outerOpts, shown);
  return { ...edited, text: out.text, relaid: edited.relaid || out.relaid };
}

/** Maps a line:col inside a ConfigMap's block scalar to file line:col, so messages point into the manifest. */
function innerPos(node: Scalar, headerLine: number, text: string, shown: string, key: string): LinePos {
  const block = node.type === Scalar.BLOCK_LITERAL || node.type === Scalar.BLOCK_FOLDED;
  const lines = text.split('\n');
  const first = lines.slice(headerLine).find((l) => l.trim() !== '') ?? '';
  const indent = first.length - first.trimStart().length;
  return (l, c) => block
    ? `${shown}:${headerLine + l}:${indent + c} (data["${key}"] line ${l}:${c})`
    : `${shown} data["${key}"] line ${l}:${c}`;
}

async function editYaml(args: YamlEditArgs, ctx: StepContext): Promise<StepOutcome> {
  const shown = args.file;
  const path = hostPath(ctx, args.file);
  const st = await statIfExists(path);
  if (!st) {
    throw new StepError(ErrorCode.NotFound, `${shown} does not exist`,
      'yaml.edit changes existing files and never creates them: install the file first (file.install or template.render) or fix "file"');
  }
  if (!st.isFile()) throw new StepError(ErrorCode.InvalidArgument, `${shown} is not a regular file`, 'point "file" at the YAML file itself');
  const real = await realTarget(ctx, path, shown);
  const original = await readFile(real, 'utf8');
  const edited = args.configMap ? editConfigMap(original, args, shown) : editText(original, args, (l, c) => `${shown}:${l}:${c}`, shown);
  const where = args.configMap ? `data["${args.configMap.key}"] in ${shown}` : shown;
  if (!edited) return { status: 'unchanged', message: `${where} already has the wanted values` };

  const diff = unifiedDiff(original, edited.text, `${shown}`, `${shown} (yaml.edit)`);
  for (const line of diff.trimEnd().split('\n')) ctx.output(line);
  if (edited.relaid) ctx.output(`note: ${shown} could not keep its exact layout; comments are kept, spacing follows the YAML library`);
  const summary = summarize(edited.changes);
  if (ctx.check) return { status: 'changed', diff, message: `check mode: would change ${where}: ${summary}` };

  const backup = args.backup ? await makeBackup(real) : undefined;
  await writeFileAtomicAsync(real, edited.text, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, dirMode: false });
  const shownBackup = backup ? ` (backup ${await showHost(ctx, backup)})` : '';
  return { status: 'changed', diff, message: `changed ${where}: ${summary}${shownBackup}` };
}

function summarize(changes: TreeChange[]): string {
  const parts = changes.map((c) => `${c.what} ${c.path}`);
  return parts.length > 6 ? `${parts.slice(0, 6).join(', ')} and ${parts.length - 6} more` : parts.join(', ');
}

/** The `yaml.edit` executor. */
export const yamlEditExecutor: StepExecutor<YamlEditArgs> = {
  type: 'yaml.edit',
  run: (args, ctx) => guarded(ctx.signal, () => editYaml(args, ctx)),
};
