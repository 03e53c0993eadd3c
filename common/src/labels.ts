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

type Term =
  | { op: 'eq'; key: string; value: string }
  | { op: 'ne'; key: string; value: string }
  | { op: 'exists'; key: string }
  | { op: 'absent'; key: string };

/** A parsed label selector: every term must hold. */
export interface Selector {
  readonly text: string;
  matches(labels: Labels): boolean;
}

/**
 * Parses a selector in the Kubernetes equality style: `site=plant-7,role!=cloud,gpu,!drain`.
 * The empty selector matches everything.
 */
export function parseSelector(text: string): Selector {
  const terms: Term[] = [];
  for (const raw of text.split(',').map((t) => t.trim()).filter(Boolean)) {
    let m: RegExpExecArray | null;
    if ((m = /^([^!=]+)!=(.*)$/.exec(raw))) terms.push({ op: 'ne', key: m[1]!.trim(), value: m[2]!.trim() });
    else if ((m = /^([^!=]+)==?(.*)$/.exec(raw))) terms.push({ op: 'eq', key: m[1]!.trim(), value: m[2]!.trim() });
    else if ((m = /^!([^!=]+)$/.exec(raw))) terms.push({ op: 'absent', key: m[1]!.trim() });
    else if ((m = /^([^!=]+)$/.exec(raw))) terms.push({ op: 'exists', key: m[1]!.trim() });
    else {
      throw new FerryError(ErrorCode.InvalidArgument, `selector term "${raw}" is not understood`, 'use key=value, key!=value, key or !key, separated by commas');
    }
    const t = terms[terms.length - 1]!;
    checkLabel(t.key, 'value' in t ? t.value : '');
  }
  return {
    text,
    matches(labels: Labels): boolean {
      return terms.every((t) => {
        switch (t.op) {
          case 'eq': return labels[t.key] === t.value;
          case 'ne': return labels[t.key] !== t.value;
          case 'exists': return t.key in labels;
          case 'absent': return !(t.key in labels);
        }
      });
    },
  };
}
