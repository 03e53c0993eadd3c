/**
 * The `steps:` section: one entry per step, each checked completely (keys,
 * id, type, args by the type's schema, when, timing, guards) so a plan with
 * ten mistakes shows ten problems at once.
 */
import { isScalar, isSeq, type Node } from 'yaml';
import { parseDuration } from '../duration.js';
import type { Entry, PlanSource } from './parse-yaml.js';
import { parseWhen } from './parse-when.js';
import { didYouMean } from './plan-suggest.js';
import type { StepSchema } from './step-schema.js';
import type { PlanStep, StepGuards } from './types.js';
import { validateArgs } from './validate-args.js';
import { checkRefs, type RefScope } from './validate-refs.js';

/** Step ids and plan names: short, lower-case, safe in file names and URLs. */
export const ID = /^[a-z0-9][a-z0-9._-]*$/;
export const STEP_KEYS = ['id', 'type', 'args', 'when', 'timeout', 'retries', 'retryDelay', 'creates', 'unless', 'onlyIf'];
export const DEFAULT_TIMEOUT_MS = 5 * 60_000;
export const DEFAULT_RETRY_DELAY_MS = 5_000;

/** What steps are checked against: the declared names and the known step types. */
export interface StepScope extends RefScope {
  schemas: ReadonlyMap<string, StepSchema<unknown>>;
}

function duration(src: PlanSource, e: Entry, min: number): number | undefined {
  if (isScalar(e.value) && typeof e.value.value === 'number') {
    src.problem(e.value, `${e.key} needs a unit, e.g. ${e.value.value}s`);
    return undefined;
  }
  const text = src.text(e.value, e.key);
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text, e.key);
  } catch {
    src.problem(e.value, `${e.key} "${text}" is not a duration; write 500ms, 30s, 5m, 2h or 1h30m`);
    return undefined;
  }
  if (ms < min) { src.problem(e.value, `${e.key} must be more than 0`); return undefined; }
  return ms;
}

/** `unless`/`onlyIf`: an argv list, or one string run by /bin/sh -c (pipes and `||` need a shell). */
function command(src: PlanSource, e: Entry, scope: RefScope): string[] | undefined {
  checkRefs(src, e.value, scope);
  if (isScalar(e.value) && typeof e.value.value === 'string') {
    if (!e.value.value.trim()) { src.problem(e.value, `${e.key} must not be empty`); return undefined; }
    return ['/bin/sh', '-c', e.value.value];
  }
  if (isSeq(e.value)) {
    const argv = (src.items(e.value, e.key) ?? []).map((n) => src.text(n, `${e.key} items`, { allowNumbers: true }));
    if (argv.length === 0) { src.problem(e.value, `${e.key} must not be empty`); return undefined; }
    return argv.every((a) => a !== undefined) ? (argv as string[]) : undefined;
  }
  src.problem(e.value ?? e.keyNode, `${e.key} must be a command: a list like [test, -f, /etc/x] or a shell string`);
  return undefined;
}

function unknownType(type: string, schemas: ReadonlyMap<string, StepSchema<unknown>>): string {
  const known = [...schemas.keys()].sort();
  return `unknown step type "${type}"${didYouMean(type, known)}; known types: ${known.length ? known.join(', ') : '(none registered)'}`;
}

/** Reads one step; undefined when it has problems (already recorded). */
function parseStep(src: PlanSource, item: Node | null, scope: StepScope, ids: Map<string, Node>): PlanStep | undefined {
  const entries = src.entries(item, 'each step');
  if (!entries) return undefined;
  const before = src.problems.length;
  const get = (k: string) => entries.find((e) => e.key === k);
  for (const e of entries) if (!STEP_KEYS.includes(e.key)) src.problem(e.keyNode, `unknown step key "${e.key}"${didYouMean(e.key, STEP_KEYS)}`);

  const idE = get('id');
  const id = idE ? src.text(idE.value, 'step id') : undefined;
  if (!idE) src.problem(item, 'step needs an id');
  else if (id !== undefined && !ID.test(id)) src.problem(idE.value, `step id "${id}" must match [a-z0-9][a-z0-9._-]*`);
  else if (id !== undefined) {
    const first = ids.get(id);
    if (first) src.problem(idE.value, `duplicate step id "${id}" (first used at line ${src.pos(first).line})`);
    else ids.set(id, idE.value!);
  }

  const typeE = get('type');
  const type = typeE ? src.text(typeE.value, 'step type') : undefined;
  if (!typeE) src.problem(item, `step${id ? ` "${id}"` : ''} needs a type`);
  const schema = type === undefined ? undefined : scope.schemas.get(type);
  if (type !== undefined && !schema) src.problem(typeE!.value, unknownType(type, scope.schemas));

  const argsE = get('args');
  const argsNode = argsE && !src.isNull(argsE.value) ? argsE.value : null;
  let args: Record<string, unknown> = {};
  if (argsNode && src.entries(argsNode, 'args', true) === undefined) src.problem(argsNode, 'args must be a mapping (key: value lines)');
  else if (argsNode) {
    args = src.plain(argsNode) as Record<string, unknown>;
    const templated = checkRefs(src, argsNode, scope);
    if (schema) validateArgs(src, schema, args, argsNode, typeE!.value ?? item!, templated);
  } else if (schema) {
    validateArgs(src, schema, {}, null, (argsE?.keyNode ?? typeE!.value ?? item)!, new Set());
  }

  const whenE = get('when');
  const when = whenE ? parseWhen(src, whenE.value) : undefined;

  const timeoutE = get('timeout');
  const timeoutMs = timeoutE ? duration(src, timeoutE, 1) : DEFAULT_TIMEOUT_MS;
  const delayE = get('retryDelay');
  const retryDelayMs = delayE ? duration(src, delayE, 0) : DEFAULT_RETRY_DELAY_MS;
  const retriesE = get('retries');
  let retries = 0;
  if (retriesE) {
    const v = isScalar(retriesE.value) ? retriesE.value.value : undefined;
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) retries = v;
    else src.problem(retriesE.value ?? retriesE.keyNode, 'retries must be a whole number, 0 or more');
  }

  const guards: StepGuards = {};
  const createsE = get('creates');
  if (createsE) {
    checkRefs(src, createsE.value, scope);
    const c = src.text(createsE.value, 'creates');
    if (c !== undefined && !c.trim()) src.problem(createsE.value, 'creates must be a path');
    else if (c !== undefined) guards.creates = c;
  }
  for (const k of ['unless', 'onlyIf'] as const) {
    const e = get(k);
    const argv = e ? command(src, e, scope) : undefined;
    if (argv) guards[k] = argv;
  }

  if (src.problems.length !== before || id === undefined || type === undefined || timeoutMs === undefined || retryDelayMs === undefined) return undefined;
  return { id, type, args, ...(when && { when }), timeoutMs, retries, retryDelayMs, guards, pos: src.pos(item) };
}

/** Reads `steps:`; problems go to `src`. A plan needs at least one step. */
export function parseSteps(src: PlanSource, node: Node | null, scope: StepScope): PlanStep[] {
  const items = src.items(node, 'steps');
  if (!items) return [];
  if (items.length === 0) src.problem(node, 'steps is empty; a plan needs at least one step');
  const ids = new Map<string, Node>();
  const out: PlanStep[] = [];
  for (const item of items) {
    const step = parseStep(src, item, scope, ids);
    if (step) out.push(step);
  }
  return out;
}
