/**
 * Explicit targeting: every command that acts on hosts (exec, run, bundle
 * prefetch, rollout create, agents label) names them by a label selector, by
 * host (hostname or agent id), or says `--all`. Nothing acts on the whole
 * fleet by omission. The refusals and the "matches nothing" error live here,
 * once, so the CLI (before it connects) and the controller (for any client)
 * say the same thing with the same exit code (2, usage).
 */
import { ErrorCode, FerryError } from './errors.js';
import { parseSelector } from './labels.js';

/** Targets as they travel in ExecRequest, RunPlanRequest, PrefetchRequest and ResolveTargetsRequest. */
export interface TargetRequest {
  selector: string;
  hosts: string[];
  all: boolean;
}

const HOW = '--selector LABELS (e.g. role=edge or "site in (plant-7,plant-9)"), --host NAME (hostname or agent id; repeatable), or --all for every agent';

/** The refusal of a command that was given no targets. */
export function targetingRequired(command: string, example: string): FerryError {
  return new FerryError(ErrorCode.InvalidArgument, `${command} needs targets: ${HOW}`,
    `e.g. ${example}; add --list-hosts to see who would be targeted without running anything`);
}

/**
 * Targets to check: as flags (`selector` undefined when --selector was not
 * given) or from the wire (where "" cannot be told from absent).
 */
export interface TargetInput {
  selector?: string;
  hosts: string[];
  all: boolean;
}

/** How a target set reads in messages: `selector "role=edge" and hosts edge-1, edge-2`. */
export function describeTargets(t: { selector: string | null; hosts: readonly string[]; all?: boolean; exclude?: readonly string[] }): string {
  if (t.all) return 'every agent (--all)';
  const parts: string[] = [];
  if (t.selector !== null && t.selector.trim()) parts.push(`selector "${t.selector}"`);
  else if (t.selector !== null) parts.push('the empty selector');
  if (t.hosts.length) parts.push(`host${t.hosts.length > 1 ? 's' : ''} ${t.hosts.join(', ')}`);
  const what = parts.join(' and ') || 'no targets';
  return t.exclude?.length ? `${what}, excluding ${t.exclude.join(', ')}` : what;
}

/**
 * The one error for targets that resolve to no agent, on every command, so
 * scripts can rely on exit 2 and the same text.
 */
export function noTargetsMatched(t: { selector: string | null; hosts: readonly string[]; all?: boolean; exclude?: readonly string[] }): FerryError {
  const hint = t.selector?.trim()
    ? `see the agents and their labels with \`ferry agents ls\`; \`ferry agents ls --selector '${t.selector}'\` lists what the selector matches`
    : 'see the agents and their labels with `ferry agents ls`';
  return new FerryError(ErrorCode.InvalidArgument, `no enrolled agent matches ${describeTargets(t)}`, hint);
}

/**
 * Checks a target request (wire or flags) and returns it normalised (hosts
 * trimmed, a `a,b` host list split). Refuses: no targets at all; an empty
 * selector (it would mean every agent; that is --all); --all together with a
 * selector or hosts; a malformed selector (at its column).
 */
export function checkTargets(t: TargetInput, command: string, example: string): TargetRequest {
  const hosts = t.hosts.flatMap((h) => h.split(',')).map((h) => h.trim()).filter(Boolean);
  const hasSelector = (t.selector ?? '').trim() !== '';
  if (t.all) {
    if (hasSelector || hosts.length) {
      throw new FerryError(ErrorCode.InvalidArgument, `${command}: --all already means every agent; it cannot be combined with --selector or --host`,
        'drop --all to target by selector or host, or drop those to target every agent');
    }
    return { selector: '', hosts: [], all: true };
  }
  if (!hasSelector && hosts.length === 0) {
    if (t.selector !== undefined || t.hosts.length) {
      throw new FerryError(ErrorCode.InvalidArgument, `${command}: an empty --selector or --host names no agent`,
        `to act on every agent say --all; otherwise e.g. ${example}`);
    }
    throw targetingRequired(command, example);
  }
  if (hasSelector) parseSelector(t.selector!);
  return { selector: (t.selector ?? '').trim(), hosts, all: false };
}
