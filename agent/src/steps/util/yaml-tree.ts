/**
 * Edits on a parsed `yaml` Document (set, deep merge, delete by path). They
 * change as few nodes as possible — an existing scalar keeps its node, so its
 * comment and quoting stay — and only when the value really differs, which is
 * what makes yaml.edit idempotent.
 */
import { ErrorCode } from '../../../../common/src/errors.js';
import { isDeepStrictEqual } from 'node:util';
import { isAlias, isMap, isNode, isScalar, isSeq, type Document, type YAMLMap, type YAMLSeq } from 'yaml';
import { formatYamlPath, type YamlPath } from '../../../../common/src/plan/steps/yaml-edit.js';
import { StepError } from '../step-error.js';

/** Says where a source offset is, e.g. "/etc/kubeedge/config/edgecore.yaml:12:13". */
export type PosFn = (offset: number) => string;

type Container = YAMLMap | YAMLSeq;

/** What one edit did, for the outcome message. */
export interface TreeChange { path: string; what: 'set' | 'added' | 'deleted' }

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isEmpty = (n: unknown) => n === undefined || n === null || (isScalar(n) && n.value === null);

/** A short description of a node for messages: `a boolean (false)`, `a list`. */
export function describeNode(n: unknown): string {
  if (isMap(n)) return 'a mapping';
  if (isSeq(n)) return 'a list';
  if (isAlias(n)) return `an alias (*${n.source})`;
  const v = isScalar(n) ? n.value : n;
  if (v === null || v === undefined) return 'empty';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)})`;
  return `a ${typeof v} (${String(v)})`;
}

/** Applies edits to one document, remembering what changed. */
export class TreeEditor {
  readonly changes: TreeChange[] = [];

  constructor(private readonly doc: Document, private readonly pos: PosFn) {}

  /** Sets `value` at `path`, creating missing mappings (or lists, before an index) on the way. */
  set(path: YamlPath, value: unknown): void {
    const parent = this.walk(path, path.slice(0, -1), true, 'set')!;
    this.setLeaf(parent, path, value);
  }

  /** Deep-merges a mapping: nested mappings merge key by key, everything else is set. */
  merge(path: YamlPath, value: Record<string, unknown>): void {
    const here = () => (path.length === 0 ? this.root(true, path) : this.child(this.walk(path, path.slice(0, -1), true, 'merge into')!, path, path.length - 1));
    let target = here();
    if (isEmpty(target)) {
      this.set(path, {});
      target = here();
      // Report the keys merged below, not the empty mapping made to hold them.
      if (Object.keys(value).length > 0) this.changes.pop();
    }
    if (!isMap(target)) throw this.pathError(path, path, target, 'merge into', 'a mapping');
    for (const [k, v] of Object.entries(value)) {
      const sub = [...path, k];
      if (isMapping(v) && isMap(target.get(k, true))) this.merge(sub, v);
      else this.setLeaf(target, sub, v);
    }
  }

  /** Removes the key or list item at `path`; nothing to do when it is absent. */
  delete(path: YamlPath): void {
    let parent: Container | undefined;
    try { parent = this.walk(path, path.slice(0, -1), false, 'delete'); } catch { return; } // through a scalar: absent
    const last = path[path.length - 1]!;
    if (!parent || this.child(parent, path, path.length - 1, true) === undefined) return;
    if (isMap(parent)) parent.delete(last); else parent.items.splice(last as number, 1);
    this.changes.push({ path: formatYamlPath(path), what: 'deleted' });
  }

  private root(create: boolean, path: YamlPath): unknown {
    if (isEmpty(this.doc.contents) && create) this.doc.contents = this.doc.createNode(typeof path[0] === 'number' ? [] : {}) as never;
    return this.doc.contents;
  }

  /** Walks to the container at `prefix` (creating empty ones if asked); undefined when absent and not creating. */
  private walk(full: YamlPath, prefix: YamlPath, create: boolean, verb: string): Container | undefined {
    let node = this.root(create, full);
    if (isEmpty(node)) return undefined;
    for (let i = 0; i <= prefix.length; i++) {
      const seg = full[i]!;
      if (!(isMap(node) || isSeq(node)) || (typeof seg === 'number') !== isSeq(node)) {
        throw this.pathError(full, full.slice(0, i), node, verb, typeof seg === 'number' ? 'a list' : 'a mapping');
      }
      if (i === prefix.length) return node;
      let next = this.child(node, full, i);
      if (isEmpty(next)) {
        if (!create) return undefined;
        next = this.doc.createNode(typeof full[i + 1] === 'number' ? [] : {});
        this.put(node, full, i, next);
      }
      node = next;
    }
    return undefined;
  }

  /** The child at full[i] of a container (checked to be the right kind by the caller). */
  private child(node: Container, full: YamlPath, i: number, quiet = false): unknown {
    const seg = full[i]!;
    if (isMap(node)) {
      if (typeof seg === 'number') throw this.pathError(full, full.slice(0, i), node, 'reach', 'a list');
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === seg);
      return pair?.value ?? (pair ? null : undefined);
    }
    if (typeof seg !== 'number') throw this.pathError(full, full.slice(0, i), node, 'reach', 'a mapping');
    if (seg > node.items.length && !quiet) {
      throw new StepError(ErrorCode.StepYamlPath, `cannot reach ${formatYamlPath(full)}: ${formatYamlPath(full.slice(0, i))} has ${node.items.length} items${this.at(node)}`, 'use an index up to the list length (the length itself appends)');
    }
    return node.items[seg];
  }

  private put(node: Container, full: YamlPath, i: number, value: unknown): void {
    const seg = full[i]!;
    if (isMap(node)) node.set(seg, value);
    else if ((seg as number) === node.items.length) node.items.push(value);
    else node.items[seg as number] = value;
  }

  private setLeaf(parent: Container, path: YamlPath, value: unknown): void {
    const i = path.length - 1;
    const existing = this.child(parent, path, i);
    const current = isNode(existing) ? existing.toJS(this.doc) : existing ?? undefined;
    if (existing !== undefined && isDeepStrictEqual(current, value)) return;
    this.changes.push({ path: formatYamlPath(path), what: existing === undefined ? 'added' : 'set' });
    if (isScalar(existing) && (value === null || typeof value !== 'object')) {
      // Keep the node (and its comment); drop styling that would misrender another type.
      if (typeof existing.value !== typeof value) {
        existing.type = undefined; existing.format = undefined; existing.tag = undefined; existing.minFractionDigits = undefined;
      }
      existing.value = value;
      return;
    }
    this.put(parent, path, i, this.doc.createNode(value));
  }

  private at(node: unknown): string {
    const r = isNode(node) ? node.range : undefined;
    return r ? ` at ${this.pos(r[0])}` : '';
  }

  private pathError(full: YamlPath, prefix: YamlPath, found: unknown, verb: string, wanted: string): StepError {
    const where = prefix.length ? formatYamlPath(prefix) : 'the document root';
    return new StepError(
      ErrorCode.StepYamlPath,
      `cannot ${verb} ${formatYamlPath(full)}: ${where} is ${describeNode(found)}${this.at(found)}, not ${wanted}`,
      prefix.length ? `fix the path, or set ${formatYamlPath(prefix)} itself` : 'fix the path',
    );
  }
}
