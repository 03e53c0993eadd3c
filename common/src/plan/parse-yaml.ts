/**
 * YAML node helpers for plan parsing: positions, problems, and reading
 * nodes into plain values. Everything here records problems instead of
 * throwing, so one pass over a plan reports every mistake.
 */
import { isAlias, isMap, isScalar, isSeq, visit, type Document, type LineCounter, type Node, type Pair, type YAMLMap } from 'yaml';
import type { PlanProblem, SourcePos } from './types.js';

/** A mapping entry whose key is a plain scalar. */
export interface Entry {
  key: string;
  keyNode: Node;
  /** The value node, aliases already resolved; null for `key:` with nothing after it. */
  value: Node | null;
}

/** One plan file being read: the parsed document, its line table and the problems found so far. */
export class PlanSource {
  readonly problems: PlanProblem[] = [];

  constructor(readonly file: string, readonly doc: Document, private readonly lines: LineCounter) {}

  /** file:line:col of a source offset (both 1-based, as editors count). */
  posAt(offset: number): SourcePos {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col };
  }

  /** Where a node starts; nodes without a range (should not happen for parsed ones) point at 1:1. */
  pos(node: Node | null | undefined): SourcePos {
    return this.posAt(node?.range?.[0] ?? 0);
  }

  problem(node: Node | null | undefined, message: string): void {
    this.problems.push({ ...this.pos(node), message });
  }

  /**
   * Reports every repeated key in every mapping of the document, at the
   * repeat, naming the line of the first. (Done here rather than by the
   * parser's uniqueKeys check so the message says which key and where.)
   */
  reportDuplicateKeys(): void {
    visit(this.doc, {
      Map: (_, map) => {
        const first = new Map<string, Node>();
        for (const pair of map.items) {
          const k = this.resolve(pair.key);
          if (!isScalar(k) || k.value === null || typeof k.value === 'object') continue;
          const key = String(k.value);
          const prev = first.get(key);
          if (prev) this.problem(k, `duplicate key "${key}" (first at line ${this.pos(prev).line})`);
          else first.set(key, k);
        }
      },
    });
  }

  /** Follows `*alias` to the anchored node, so `when: *edge` reads like the original. */
  resolve(node: unknown): Node | null {
    if (isAlias(node)) return (node.resolve(this.doc) as Node | undefined) ?? null;
    return (node as Node | null | undefined) ?? null;
  }

  /** True for a missing value or an explicit `~`/`null`. */
  isNull(node: Node | null): boolean {
    return node === null || (isScalar(node) && node.value === null);
  }

  /**
   * The entries of a mapping node, or a problem (at `node`) saying what
   * `what` should have been. Later duplicates of a key are dropped: the YAML
   * parser already reported them, and reading them again would repeat problems.
   * `quiet` is for second walks over a node already read (and reported) once.
   */
  entries(node: Node | null, what: string, quiet = false): Entry[] | undefined {
    if (!isMap(node)) {
      if (!quiet) this.problem(node, `${what} must be a mapping (key: value lines)`);
      return undefined;
    }
    const out: Entry[] = [];
    const seen = new Set<string>();
    for (const pair of (node as YAMLMap).items as Array<Pair<unknown, unknown>>) {
      const keyNode = this.resolve(pair.key);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
        if (!quiet) this.problem(keyNode ?? node, `keys in ${what} must be plain names`);
        continue;
      }
      const key = String(keyNode.value);
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ key, keyNode, value: this.resolve(pair.value) });
    }
    return out;
  }

  /** Items of a sequence node, or a problem if it is not one. */
  items(node: Node | null, what: string): Array<Node | null> | undefined {
    if (!isSeq(node)) {
      this.problem(node, `${what} must be a list ("- item" lines)`);
      return undefined;
    }
    return node.items.map((i) => this.resolve(i));
  }

  /**
   * A scalar as text. Plain numbers are taken as written in the file, so
   * `version: 1.10` stays "1.10" instead of becoming the float 1.1.
   */
  text(node: Node | null, what: string, opts: { allowNumbers?: boolean; allowBool?: boolean } = {}): string | undefined {
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v === 'string') return v;
      if (typeof v === 'number' && opts.allowNumbers) return this.sourceText(node) ?? String(v);
      if (typeof v === 'boolean' && opts.allowBool) return String(v);
    }
    this.problem(node, `${what} must be a string${isScalar(node) && typeof node.value === 'number' ? ' (quote it)' : ''}`);
    return undefined;
  }

  /** The source text of a plain scalar (needs `keepSourceTokens`); undefined for quoted or block scalars. */
  sourceText(node: Node): string | undefined {
    const tok = node.srcToken;
    return tok && tok.type === 'scalar' ? tok.source : undefined;
  }

  /**
   * A node as a plain JS value. Numbers that would change when read
   * (`1.10`, `0755`, `1e3`) stay as written, as strings: in install plans
   * those are versions and file modes far more often than arithmetic.
   */
  plain(node: Node | null): unknown {
    if (node === null) return null;
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const e of this.entries(node, 'mapping') ?? []) out[e.key] = this.plain(e.value);
      return out;
    }
    if (isSeq(node)) return node.items.map((i) => this.plain(this.resolve(i)));
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v === 'number') {
        const src = this.sourceText(node);
        if (src !== undefined && String(v) !== src) return src;
      }
      return v;
    }
    return null;
  }
}
