/**
 * Templates in plan strings. The language is intentionally tiny — a plan is
 * data the controller must be able to check before anything ships, not a
 * program — and there is no code execution of any kind:
 *
 * ```
 * {{ params.name }}          a plan parameter (typed: int, bool, list, map, string)
 * {{ facts.os.id }}          a host fact, dotted path into nested facts;
 *                            list items as facts.ips[0] or facts.ips.0
 * {{ labels.site }}          a host label; everything after "labels." is the key,
 *                            so {{ labels.topology.kubernetes.io/zone }} works
 * {{ bundles.kubeedge }}     the directory where that bundle is unpacked on the host
 * {{ facts.arch | default("amd64") }}   the only filter: a fallback when the name is missing
 * {{ "{{" }}                 a quoted literal, to write braces that must stay
 * ```
 *
 * A string that is exactly one expression takes the value's type, so
 * `images: "{{ params.images }}"` fills a list argument with a list param.
 * Inside longer text, values are written as text; lists and maps cannot be.
 *
 * Any other `{{ … }}` — Go templates such as `{{.Id}}` or
 * `{{ .Values.image }}` that belong to docker, kubectl or helm — is left
 * exactly as written. Only `{{ word.… }}` or a bare root name is taken as
 * ours, so a typo like `{{ param.x }}` is an error rather than literal text.
 */
import { didYouMean } from './plan-suggest.js';
import { factAt } from './when.js';

export const TEMPLATE_ROOTS = ['params', 'facts', 'labels', 'bundles'] as const;
export type TemplateRoot = (typeof TEMPLATE_ROOTS)[number];

/** One `{{ root.name }}` reference. */
export interface TemplateRef {
  root: TemplateRoot;
  name: string;
  /** From `| default("…")`. */
  fallback?: string;
  /** The expression as written, braces included, for messages. */
  source: string;
}

/** A string split into literal text and references. */
export type TemplatePart = { text: string } | { ref: TemplateRef };

export interface ScannedTemplate {
  parts: TemplatePart[];
  /** True when the string contained at least one expression of ours (references or quoted literals). */
  templated: boolean;
  /** Malformed expressions, one message each. */
  errors: string[];
  /** Bodies of `{{ … }}` left as written (not ours), trimmed: lets validation spot `{{ version }}` meant as a param. */
  foreign: string[];
}

const NAME: Record<TemplateRoot, RegExp> = {
  params: /^[A-Za-z_][A-Za-z0-9_-]*$/,
  bundles: /^[A-Za-z_][A-Za-z0-9_-]*$/,
  facts: /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+|\[\d+\])*$/,
  labels: /^[A-Za-z0-9._/-]+$/,
};

const LITERAL = /^(?:"([^"]*)"|'([^']*)')$/;
const DEFAULT_FILTER = /^default\s*\(\s*(?:"([^"]*)"|'([^']*)')\s*\)$/;

/** Splits `s` into text and references; never throws. */
export function scanTemplate(s: string): ScannedTemplate {
  const parts: TemplatePart[] = [];
  const errors: string[] = [];
  const foreign: string[] = [];
  let templated = false;
  let last = 0;
  const text = (t: string) => {
    if (!t) return;
    const prev = parts[parts.length - 1];
    if (prev && 'text' in prev) prev.text += t;
    else parts.push({ text: t });
  };
  for (const m of s.matchAll(/\{\{([\s\S]*?)\}\}/g)) {
    text(s.slice(last, m.index));
    last = m.index + m[0].length;
    const body = m[1]!.trim();
    const lit = LITERAL.exec(body);
    const word = /^([A-Za-z_][A-Za-z0-9_]*)(\.|\s*\||$)/.exec(body);
    if (lit) {
      templated = true;
      text(lit[1] ?? lit[2] ?? '');
    } else if (word && (word[2] === '.' || (TEMPLATE_ROOTS as readonly string[]).includes(word[1]!))) {
      templated = true;
      const ref = parseExpr(body, m[0], errors);
      if (ref) parts.push({ ref });
    } else {
      text(m[0]); // not ours: someone else's template syntax, kept verbatim
      foreign.push(body);
    }
  }
  text(s.slice(last));
  return { parts, templated, errors, foreign };
}

function parseExpr(body: string, source: string, errors: string[]): TemplateRef | undefined {
  const bar = body.indexOf('|');
  const refText = (bar < 0 ? body : body.slice(0, bar)).trim();
  const filter = bar < 0 ? undefined : body.slice(bar + 1).trim();
  const dot = refText.indexOf('.');
  const rootText = dot < 0 ? refText : refText.slice(0, dot);
  const name = dot < 0 ? '' : refText.slice(dot + 1);
  if (!(TEMPLATE_ROOTS as readonly string[]).includes(rootText)) {
    errors.push(`${source}: unknown template root "${rootText}"${didYouMean(rootText, TEMPLATE_ROOTS)}; use params, facts, labels or bundles`);
    return undefined;
  }
  const root = rootText as TemplateRoot;
  if (!NAME[root].test(name)) {
    errors.push(`${source}: expected ${root}.<name>${name ? `, "${name}" is not a valid name` : ''}`);
    return undefined;
  }
  let fallback: string | undefined;
  if (filter !== undefined) {
    const f = DEFAULT_FILTER.exec(filter);
    if (!f) {
      errors.push(`${source}: unknown filter "${filter}"; the only filter is default("text")`);
      return undefined;
    }
    fallback = f[1] ?? f[2] ?? '';
  }
  return { root, name, fallback, source };
}

/** What expansion looks values up in: one host, one rollout. */
export interface ExpandContext {
  /** Typed parameter values, from resolveParams. */
  params: Readonly<Record<string, unknown>>;
  /** The host's facts (nested objects). */
  facts: unknown;
  labels: Readonly<Record<string, string>>;
  /** The directory a bundle alias is unpacked in on this host; undefined when it is not there. */
  bundleDir: (alias: string) => string | undefined;
}

function lookup(ref: TemplateRef, ctx: ExpandContext): { value?: unknown; error?: string } {
  let value: unknown;
  switch (ref.root) {
    case 'params': value = Object.hasOwn(ctx.params, ref.name) ? ctx.params[ref.name] : undefined; break;
    case 'facts': value = factAt(ctx.facts, ref.name); break;
    case 'labels': value = Object.hasOwn(ctx.labels, ref.name) ? ctx.labels[ref.name] : undefined; break;
    case 'bundles': value = ctx.bundleDir(ref.name); break;
  }
  if (value !== undefined && value !== null) return { value };
  if (ref.fallback !== undefined) return { value: ref.fallback };
  const what = {
    params: `unknown param "${ref.name}" (not declared, or no value and no default)`,
    facts: `host has no fact "${ref.name}"`,
    labels: `host has no label "${ref.name}"`,
    bundles: `bundle "${ref.name}" is not available on this host`,
  }[ref.root];
  return { error: `${ref.source}: ${what}` };
}

/**
 * Expands one string. A string that is a single expression yields the
 * value itself (any type); otherwise text. Problems are returned, not
 * thrown, so a caller can collect every one of them.
 */
export function expandString(s: string, ctx: ExpandContext): { value: unknown; errors: string[] } {
  const { parts, errors } = scanTemplate(s);
  if (errors.length) return { value: s, errors };
  const only = parts.length === 1 ? parts[0]! : undefined;
  if (only && 'ref' in only) {
    const r = lookup(only.ref, ctx);
    return r.error ? { value: s, errors: [r.error] } : { value: r.value, errors: [] };
  }
  let out = '';
  for (const p of parts) {
    if ('text' in p) { out += p.text; continue; }
    const r = lookup(p.ref, ctx);
    if (r.error) errors.push(r.error);
    else if (typeof r.value === 'object') errors.push(`${p.ref.source}: is a ${Array.isArray(r.value) ? 'list' : 'map'}; it can only fill a whole value, not part of a string`);
    else out += String(r.value);
  }
  return { value: errors.length ? s : out, errors };
}

/**
 * Expands every string inside `value` (deep: maps, lists). Errors are
 * prefixed with the dotted path (`set[2].path`) so messages point at the arg.
 */
export function expandValue(value: unknown, ctx: ExpandContext, path = ''): { value: unknown; errors: string[] } {
  if (typeof value === 'string') {
    const r = expandString(value, ctx);
    return { value: r.value, errors: r.errors.map((e) => (path ? `${path}: ${e}` : e)) };
  }
  const errors: string[] = [];
  if (Array.isArray(value)) {
    const out = value.map((v, i) => {
      const r = expandValue(v, ctx, `${path}[${i}]`);
      errors.push(...r.errors);
      return r.value;
    });
    return { value: out, errors };
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const r = expandValue(v, ctx, path ? `${path}.${k}` : k);
      errors.push(...r.errors);
      out[k] = r.value;
    }
    return { value: out, errors };
  }
  return { value, errors };
}
