import { ErrorCode, FerryError } from './errors.js';
import type { Label } from './gen/ferry/v1/common.js';

/** Labels as a plain map; keys are unique. */
export type Labels = Record<string, string>;

const KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?$/;
const VALUE = /^[A-Za-z0-9._:/-]{0,63}$/;

/** Parses `key=value`, checking both parts so bad labels never reach the store. */
export function parseLabel(s: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) {
    throw new FerryError(ErrorCode.InvalidArgument, `label "${s}" is not key=value`, 'write labels as key=value, e.g. site=plant-7');
  }
  const key = s.slice(0, i);
  const value = s.slice(i + 1);
  checkLabel(key, value);
  return [key, value];
}

/** Throws when a label key or value is not allowed. */
export function checkLabel(key: string, value: string): void {
  if (!KEY.test(key)) {
    throw new FerryError(ErrorCode.InvalidArgument, `label key "${key}" is invalid`, 'keys are 1-64 of A-Z a-z 0-9 . _ / -, starting and ending alphanumeric');
  }
  if (!VALUE.test(value)) {
    throw new FerryError(ErrorCode.InvalidArgument, `label value "${value}" for ${key} is invalid`, 'values are up to 63 of A-Z a-z 0-9 . _ : / -');
  }
}

/** Label-safe form of a fact (hostname, arch) for a `ferry/...` label; most are safe already. */
export function labelValue(s: string): string {
  return s.replace(/[^A-Za-z0-9._:/-]/g, '-').slice(0, 63);
}

export function labelsToList(labels: Labels): Label[] {
  return Object.keys(labels)
    .sort()
    .map((key) => ({ key, value: labels[key]! }));
}

export function listToLabels(list: readonly Label[]): Labels {
  const out: Labels = {};
  for (const l of list) out[l.key] = l.value;
  return out;
}

/** One requirement of a selector; a selector holds when all of them do. */
export type Requirement =
  | { op: 'eq' | 'ne'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | 'absent'; key: string };

/** A parsed label selector: every requirement must hold. */
export interface Selector {
  readonly text: string;
  readonly requirements: readonly Requirement[];
  /** True for the empty selector, which matches every agent. */
  readonly empty: boolean;
  matches(labels: Labels): boolean;
}

/** Where and why a selector does not parse; `column` is 1-based, as editors count. */
export interface SelectorProblem {
  column: number;
  message: string;
}

export const SELECTOR_SYNTAX =
  'terms separated by commas: key=value, key!=value, key in (v1,v2), key notin (v1,v2), key (has it), !key (lacks it); e.g. role=edge,site in (plant-7,plant-9)';

const KEY_CHAR = /[A-Za-z0-9._/-]/;
const VALUE_CHAR = /[A-Za-z0-9._:/-]/;

class Problem extends Error {
  constructor(readonly at: number, message: string) {
    super(message);
  }
}

/** What a character is called in an error: quoted, or named when invisible. */
const shown = (c: string | undefined) => (c === undefined ? 'the end' : JSON.stringify(c));

/**
 * A small recursive-descent reader over the selector text; it throws a
 * Problem at the offset where the text stops making sense.
 */
class Reader {
  i = 0;
  constructor(private readonly s: string) {}
  peek(): string | undefined { return this.s[this.i]; }
  ws(): void { while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++; }
  end(): boolean { return this.i >= this.s.length; }
  run(re: RegExp): string {
    const start = this.i;
    while (this.i < this.s.length && re.test(this.s[this.i]!)) this.i++;
    return this.s.slice(start, this.i);
  }

  selector(): Requirement[] {
    const out: Requirement[] = [];
    this.ws();
    if (this.end()) return out;
    for (;;) {
      out.push(this.term());
      this.ws();
      if (this.end()) return out;
      if (this.peek() !== ',') throw new Problem(this.i, `expected "," before the next term, found ${shown(this.peek())}`);
      this.i++;
      this.ws();
      if (this.end()) throw new Problem(this.i, 'expected a term after ","');
    }
  }

  term(): Requirement {
    if (this.peek() === '!') {
      this.i++;
      this.ws();
      const key = this.key();
      this.ws();
      if (this.peek() === '=' || this.peek() === '!') throw new Problem(this.i, `"!${key}" means "has no ${key} label" and takes no value; write ${key}!=VALUE to compare`);
      return { op: 'absent', key };
    }
    const key = this.key();
    this.ws();
    const c = this.peek();
    if (c === undefined || c === ',') return { op: 'exists', key };
    if (c === '=') {
      this.i += this.s[this.i + 1] === '=' ? 2 : 1;
      return { op: 'eq', key, value: this.value() };
    }
    if (c === '!' && this.s[this.i + 1] === '=') {
      this.i += 2;
      return { op: 'ne', key, value: this.value() };
    }
    const at = this.i;
    const word = this.run(/[a-z]/);
    if (word === 'in' || word === 'notin') return { op: word, key, values: this.set(word) };
    throw new Problem(at, `expected =, !=, in or notin after key "${key}", found ${shown(word || c)}`);
  }

  key(): string {
    const at = this.i;
    const key = this.run(KEY_CHAR);
    if (!key) throw new Problem(at, `expected a label key, found ${shown(this.peek())}`);
    if (!KEY.test(key)) throw new Problem(at, `label key "${key}" is invalid: keys are 1-64 of A-Z a-z 0-9 . _ / -, starting and ending alphanumeric`);
    return key;
  }

  value(): string {
    this.ws();
    const at = this.i;
    const v = this.run(VALUE_CHAR);
    const c = this.peek();
    if (c !== undefined && c !== ',' && c !== ')' && !/\s/.test(c)) {
      throw new Problem(this.i, `${shown(c)} cannot be in a label value (values are up to 63 of A-Z a-z 0-9 . _ : / -)`);
    }
    if (!VALUE.test(v)) throw new Problem(at, `label value "${v}" is longer than 63 characters`);
    return v;
  }

  set(op: string): string[] {
    this.ws();
    if (this.peek() !== '(') throw new Problem(this.i, `expected "(" after ${op}, as in "${op} (a,b)", found ${shown(this.peek())}`);
    const open = this.i++;
    const values: string[] = [];
    for (;;) {
      this.ws();
      if (this.end()) throw new Problem(open, `the set opened here has no closing ")"`);
      if (this.peek() === ')' && values.length === 0) throw new Problem(this.i, `an ${op} set needs at least one value`);
      const at = this.i;
      const v = this.value();
      if (!v) throw new Problem(at, `expected a value in the set, found ${shown(this.peek())}`);
      values.push(v);
      this.ws();
      if (this.end()) throw new Problem(open, `the set opened here has no closing ")"`);
      if (this.peek() === ')') { this.i++; return values; }
      if (this.peek() !== ',') throw new Problem(this.i, `expected "," or ")" in the set, found ${shown(this.peek())}`);
      this.i++;
    }
  }
}

function parseRequirements(text: string): { requirements?: Requirement[]; problem?: SelectorProblem } {
  try {
    return { requirements: new Reader(text).selector() };
  } catch (e) {
    if (e instanceof Problem) return { problem: { column: e.at + 1, message: e.message } };
    throw e;
  }
}

/** The problem with a selector, or undefined when it parses (for reporting at a file position). */
export function selectorProblem(text: string): SelectorProblem | undefined {
  return parseRequirements(text).problem;
}

function holds(r: Requirement, labels: Labels): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  switch (r.op) {
    case 'eq': return has && labels[r.key] === r.value;
    case 'ne': return !has || labels[r.key] !== r.value;
    case 'in': return has && r.values.includes(labels[r.key]!);
    case 'notin': return !has || !r.values.includes(labels[r.key]!);
    case 'exists': return has;
    case 'absent': return !has;
  }
}

/**
 * Parses a label selector as kubectl writes them: comma-separated terms
 * `key=value` (or `==`), `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`,
 * `key` and `!key`; commas inside parentheses belong to the set. `!=` and
 * `notin` also hold for agents without the key, as in Kubernetes. The empty
 * selector matches everything (callers that must not target the whole fleet
 * by accident refuse it; see common/src/targets.ts). This is the one parser:
 * the controller's filtering, rollout specs and the CLI all use it.
 *
 * @throws FerryError(InvalidArgument) naming the column, with the text and a caret under it.
 */
export function parseSelector(text: string): Selector {
  const { requirements, problem } = parseRequirements(text);
  if (problem) {
    throw new FerryError(ErrorCode.InvalidArgument,
      `invalid selector at column ${problem.column}: ${problem.message}\n  ${text}\n  ${' '.repeat(problem.column - 1)}^`, SELECTOR_SYNTAX);
  }
  const reqs = requirements!;
  return {
    text,
    requirements: reqs,
    empty: reqs.length === 0,
    matches: (labels: Labels) => reqs.every((r) => holds(r, labels)),
  };
}
