/**
 * Reading a rollout spec (`ferry rollout create -f rollout.yaml`, or the
 * same document built from flags), reporting every problem at once as
 * `file:line:col: path: message`. The format, with defaults:
 *
 * ```yaml
 * name: edge-1.22                 # optional; default: the plan's name
 * plan: kubeedge-edge             # required: a pushed plan (its latest version at create time)
 * params: { cloudcore_ip: 10.0.0.5 }
 * targets:                        # the UNION of selector matches and hosts, minus exclude
 *   selector: role=edge           # label selector, e.g. "site in (plant-7,plant-9),role notin (cloud)"; "" = every agent
 *   hosts: [edge-canary]          # hostnames or agent ids; they come first, in this order
 *   exclude: [edge-7]             # hostnames or agent ids
 * strategy:
 *   waves: [1, "10%", "50%", "100%"]   # CUMULATIVE share of targets done by the end of each wave; default ["100%"]
 *   maxConcurrency: 10            # per wave, a count or "25%" of the wave; default: the whole wave
 *   errorBudget:                  # exceeded when failures are MORE than the allowance; default total: 0
 *     perWave: "10%"              # of the wave's size, rounded down
 *     total: 2                    # of all targets, rounded down
 *   onFailure: pause              # pause | abort | continue (when the budget is exceeded); default pause
 *   wait: 30s                     # between waves; default 0
 *   approval: false               # wait for `ferry rollout approve` before each wave after the first
 *   offlineTimeout: 5m            # how long a host of a running wave may be offline; default 5m
 *   offline: fail                 # then: fail (counts against the budget) | skip; default fail
 *   prefetch: false               # stage the plan's bundles on every target before wave 1
 * ```
 * `errorBudget: 2` (a bare amount) is shorthand for `errorBudget: { total: 2 }`.
 *
 * An agent upgrade (`ferry agents upgrade`) is the same document with
 * `upgrade:` instead of `plan:` (and no params): every target installs the
 * agent release of that version for its architecture (docs/agent-upgrade.md).
 * ```yaml
 * upgrade:
 *   version: 0.2.0                # an agent release on the controller (ferry agents release ls)
 *   retryFailed: false            # also hosts where this version was rolled back before
 *   connectWindow: 2m             # how long the new version has to reconnect (default: the agent's, 2m)
 * ```
 */
import { isScalar, LineCounter, parseDocument, type Node } from 'yaml';
import { parseDuration } from '../../../common/src/duration.js';
import { selectorProblem } from '../../../common/src/labels.js';
import { versionProblem } from '../../../common/src/version.js';
import { didYouMean } from '../../../common/src/plan/plan-suggest.js';
import { PlanSource, type Entry } from '../../../common/src/plan/parse-yaml.js';
import { sortProblems } from '../../../common/src/plan/plan-problems.js';
import type { PlanProblem } from '../../../common/src/plan/types.js';
import { parseAmount, type Amount } from './amount.js';
import type { OfflinePolicy, OnFailure, Strategy } from './model.js';

export interface RolloutTargets {
  selector: string | null;
  hosts: string[];
  exclude: string[];
}

/** A validated rollout spec. */
/** What an agent-upgrade rollout installs. */
export interface UpgradeSpec {
  version: string;
  retryFailed: boolean;
  /** 0: the agent's own default window. */
  connectWindowMs: number;
}

export interface RolloutSpec {
  name: string;
  /** The plan's name; '' for an agent upgrade. */
  plan: string;
  /** Set for an agent upgrade (then there is no plan). */
  upgrade?: UpgradeSpec;
  params: Record<string, string>;
  targets: RolloutTargets;
  strategy: Strategy;
}

export const DEFAULT_STRATEGY: Strategy = {
  waves: [{ percent: 100 }], maxConcurrency: null, errorBudget: { perWave: null, total: { count: 0 } },
  onFailure: 'pause', waitMs: 0, approval: false, offlineTimeoutMs: 5 * 60_000, offline: 'fail', prefetch: false,
};

const TOP_KEYS = ['name', 'plan', 'upgrade', 'params', 'targets', 'strategy'];
const UPGRADE_KEYS = ['version', 'retryFailed', 'connectWindow'];
const TARGET_KEYS = ['selector', 'hosts', 'exclude'];
const STRATEGY_KEYS = ['waves', 'maxConcurrency', 'errorBudget', 'onFailure', 'wait', 'approval', 'offlineTimeout', 'offline', 'prefetch'];
const BUDGET_KEYS = ['perWave', 'total'];
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Reads a mapping's entries and reports keys outside `allowed` (with a suggestion). */
function entriesOf(src: PlanSource, node: Node | null, path: string, allowed: string[]): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const e of src.entries(node, path) ?? []) {
    if (!allowed.includes(e.key)) src.problem(e.keyNode, `${path}: unknown key "${e.key}"${didYouMean(e.key, allowed)}; allowed: ${allowed.join(', ')}`);
    else out.set(e.key, e);
  }
  return out;
}

function amountAt(src: PlanSource, node: Node | null, path: string, min: number): Amount | undefined {
  const r = parseAmount(src.plain(node), min);
  if (r.error) src.problem(node, `${path} ${r.error}`);
  return r.value;
}

function durationAt(src: PlanSource, node: Node | null, path: string): number | undefined {
  const v = src.plain(node);
  try {
    if (typeof v !== 'string') throw new Error();
    return parseDuration(v, path);
  } catch {
    src.problem(node, `${path} must be a duration like 30s, 5m or 1h30m (got ${JSON.stringify(v)})`);
    return undefined;
  }
}

function oneOf<T extends string>(src: PlanSource, node: Node | null, path: string, choices: readonly T[]): T | undefined {
  const v = src.plain(node);
  if (typeof v === 'string' && (choices as readonly string[]).includes(v)) return v as T;
  src.problem(node, `${path} must be one of ${choices.join(', ')} (got ${JSON.stringify(v)})`);
  return undefined;
}

function boolAt(src: PlanSource, node: Node | null, path: string): boolean | undefined {
  const v = src.plain(node);
  if (typeof v === 'boolean') return v;
  src.problem(node, `${path} must be true or false`);
  return undefined;
}

function stringList(src: PlanSource, node: Node | null, path: string): string[] {
  if (src.isNull(node)) return [];
  const items = src.items(node, path) ?? [];
  return items.flatMap((n, i) => {
    const v = src.plain(n);
    if (typeof v === 'string' && v.trim()) return [v.trim()];
    src.problem(n, `${path}[${i}] must be a hostname or agent id`);
    return [];
  });
}

/**
 * Reports a malformed targets.selector where it goes wrong: at the column
 * inside the scalar when it is on one line (plain or quoted), else at the scalar.
 */
function selectorAt(src: PlanSource, node: Node | null, text: string): void {
  const p = selectorProblem(text);
  if (!p) return;
  const message = `targets.selector: invalid selector at column ${p.column}: ${p.message}`;
  const range = isScalar(node) && (node.type === 'PLAIN' || node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') ? node.range : undefined;
  if (range && src.posAt(range[0]).line === src.posAt(range[1]).line) {
    const quoted = (node as { type?: string }).type !== 'PLAIN';
    src.problems.push({ ...src.posAt(range[0] + (quoted ? 1 : 0) + p.column - 1), message });
  } else src.problem(node, message);
}

function parseStrategy(src: PlanSource, node: Node | null): Strategy {
  const s: Strategy = { ...DEFAULT_STRATEGY, errorBudget: { ...DEFAULT_STRATEGY.errorBudget } };
  if (src.isNull(node)) return s;
  const e = entriesOf(src, node, 'strategy', STRATEGY_KEYS);
  const at = (k: string) => e.get(k)?.value ?? null;
  if (e.has('waves')) {
    const items = src.items(at('waves'), 'strategy.waves') ?? [];
    if (items.length === 0) src.problem(at('waves'), 'strategy.waves needs at least one wave, e.g. [1, "10%", "100%"]');
    const waves = items.map((n, i) => amountAt(src, n, `strategy.waves[${i}]`, 1));
    if (waves.every((w): w is Amount => w !== undefined) && waves.length > 0) {
      // Entries are cumulative: a later entry of the same kind must be larger.
      for (let i = 1; i < waves.length; i++) {
        const a = waves[i - 1]!;
        const b = waves[i]!;
        const same = 'count' in a && 'count' in b ? a.count >= b.count : 'percent' in a && 'percent' in b ? a.percent >= b.percent : false;
        if (same) src.problem(items[i]!, `strategy.waves[${i}]: waves are cumulative (the share of all targets done by the end of the wave), so each must be larger than the one before`);
      }
      s.waves = waves;
    }
  }
  if (e.has('maxConcurrency') && !src.isNull(at('maxConcurrency'))) s.maxConcurrency = amountAt(src, at('maxConcurrency'), 'strategy.maxConcurrency', 1) ?? null;
  if (e.has('errorBudget')) {
    const b = at('errorBudget');
    if (src.entries(b, 'strategy.errorBudget', true)) {
      const be = entriesOf(src, b, 'strategy.errorBudget', BUDGET_KEYS);
      if (be.has('perWave')) s.errorBudget.perWave = amountAt(src, be.get('perWave')!.value, 'strategy.errorBudget.perWave', 0) ?? null;
      if (be.has('total')) s.errorBudget.total = amountAt(src, be.get('total')!.value, 'strategy.errorBudget.total', 0) ?? s.errorBudget.total;
    } else {
      s.errorBudget.total = amountAt(src, b, 'strategy.errorBudget', 0) ?? s.errorBudget.total;
    }
  }
  if (e.has('onFailure')) s.onFailure = oneOf<OnFailure>(src, at('onFailure'), 'strategy.onFailure', ['pause', 'abort', 'continue']) ?? s.onFailure;
  if (e.has('wait')) s.waitMs = durationAt(src, at('wait'), 'strategy.wait') ?? 0;
  if (e.has('approval')) s.approval = boolAt(src, at('approval'), 'strategy.approval') ?? false;
  if (e.has('offlineTimeout')) s.offlineTimeoutMs = durationAt(src, at('offlineTimeout'), 'strategy.offlineTimeout') ?? s.offlineTimeoutMs;
  if (e.has('offline')) s.offline = oneOf<OfflinePolicy>(src, at('offline'), 'strategy.offline', ['fail', 'skip']) ?? s.offline;
  if (e.has('prefetch')) s.prefetch = boolAt(src, at('prefetch'), 'strategy.prefetch') ?? false;
  return s;
}

function paramsOf(src: PlanSource, node: Node | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (src.isNull(node)) return out;
  for (const e of src.entries(node, 'params') ?? []) {
    const v = src.plain(e.value);
    // Params travel as text, as with `--param`; lists and maps as JSON, which is YAML flow syntax.
    out[e.key] = v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  return out;
}

/** Parses and validates a rollout spec; `spec` is present only when there are no problems. */
export function parseRolloutSpec(text: string, file: string): { spec?: RolloutSpec; problems: PlanProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { keepSourceTokens: true, lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const src = new PlanSource(file, doc, lines);
  for (const e of doc.errors) src.problems.push({ ...src.posAt(e.pos[0]), message: e.message.split('\n')[0]! });
  if (doc.errors.length) return { problems: sortProblems(src.problems) };
  src.reportDuplicateKeys();
  const root = src.resolve(doc.contents);
  if (src.isNull(root) || !src.entries(root, 'a rollout spec', true)) {
    src.problem(root, 'a rollout spec is a mapping with plan:, targets: and strategy:');
    return { problems: sortProblems(src.problems) };
  }
  const top = entriesOf(src, root, 'rollout', TOP_KEYS);
  let upgrade: UpgradeSpec | undefined;
  let plan: string | undefined;
  if (top.has('upgrade')) {
    upgrade = parseUpgrade(src, top.get('upgrade')!.value);
    plan = '';
    if (top.has('plan')) src.problem(top.get('plan')!.keyNode, 'a rollout has plan: or upgrade:, not both');
    if (top.has('params')) src.problem(top.get('params')!.keyNode, 'an agent upgrade takes no params:');
  } else {
    plan = top.has('plan') ? src.text(top.get('plan')!.value, 'plan') : (src.problem(root, 'rollout needs plan: (a pushed plan name) or upgrade: (an agent release)'), undefined);
  }
  const name = top.has('name') ? src.text(top.get('name')!.value, 'name') : upgrade ? `agent-${upgrade.version}` : plan;
  if (top.has('name') && name !== undefined && !NAME.test(name)) src.problem(top.get('name')!.value, `name "${name}" must match [a-z0-9][a-z0-9._-]* (up to 63)`);
  const targets: RolloutTargets = { selector: null, hosts: [], exclude: [] };
  const tNode = top.get('targets')?.value ?? null;
  if (!top.has('targets') || src.isNull(tNode)) src.problem(top.get('targets')?.keyNode ?? root, 'rollout needs targets: with selector: and/or hosts:');
  else {
    const t = entriesOf(src, tNode, 'targets', TARGET_KEYS);
    if (t.has('selector')) {
      const sel = src.plain(t.get('selector')!.value);
      if (typeof sel === 'string' || sel === null) {
        targets.selector = sel ?? '';
        selectorAt(src, t.get('selector')!.value, targets.selector);
      } else src.problem(t.get('selector')!.value, 'targets.selector must be a label selector like role=edge,site=plant-7');
    }
    targets.hosts = stringList(src, t.get('hosts')?.value ?? null, 'targets.hosts');
    targets.exclude = stringList(src, t.get('exclude')?.value ?? null, 'targets.exclude');
    if (targets.selector === null && targets.hosts.length === 0) src.problem(tNode, 'targets needs selector: (use "" for every agent) or hosts:');
  }
  const strategy = parseStrategy(src, top.get('strategy')?.value ?? null);
  const params = paramsOf(src, top.get('params')?.value ?? null);
  const problems = sortProblems(src.problems);
  if (problems.length || plan === undefined || name === undefined) return { problems };
  return { spec: { name, plan, ...(upgrade ? { upgrade } : {}), params, targets, strategy }, problems };
}

/** The `upgrade:` mapping; the version must be one (whether a release of it exists is checked at create). */
function parseUpgrade(src: PlanSource, node: Node | null): UpgradeSpec {
  const out: UpgradeSpec = { version: '', retryFailed: false, connectWindowMs: 0 };
  if (src.isNull(node) || !src.entries(node, 'upgrade', true)) {
    src.problem(node, 'upgrade must be a mapping with version: (e.g. upgrade: { version: 0.2.0 })');
    return out;
  }
  const e = entriesOf(src, node, 'upgrade', UPGRADE_KEYS);
  const v = e.has('version') ? src.plain(e.get('version')!.value) : undefined;
  if (typeof v !== 'string' || versionProblem(v)) src.problem(e.get('version')?.value ?? node, `upgrade.version ${typeof v === 'string' ? versionProblem(v) : 'is required: the agent version to install, e.g. 0.2.0'}`);
  else out.version = v;
  if (e.has('retryFailed')) out.retryFailed = boolAt(src, e.get('retryFailed')!.value, 'upgrade.retryFailed') ?? false;
  if (e.has('connectWindow')) {
    const ms = durationAt(src, e.get('connectWindow')!.value, 'upgrade.connectWindow');
    if (ms !== undefined && (ms < 5_000 || ms > 3_600_000)) src.problem(e.get('connectWindow')!.value, 'upgrade.connectWindow must be between 5s and 1h');
    else out.connectWindowMs = ms ?? 0;
  }
  return out;
}
