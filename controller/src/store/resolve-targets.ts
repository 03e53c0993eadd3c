import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { parseSelector } from '../../../common/src/labels.js';
import { checkTargets, noTargetsMatched, type TargetRequest } from '../../../common/src/targets.js';
import type { AgentRecord } from './agents.js';

/** What a command targets: the union of selector matches and named hosts, minus excluded ones. */
export interface TargetSpec {
  /** null: no selector given (only hosts); "" matches every agent. */
  selector: string | null;
  hosts: readonly string[];
  exclude: readonly string[];
}

/**
 * Resolves targets, in start order: named hosts first, in the order written
 * (so a named canary is a rollout's first host), then selector matches by
 * hostname; minus `exclude`. Hosts and excludes name an agent by id or
 * hostname; a name that matches nothing (or two agents) is an error: a typo
 * in `exclude` must not put a host in the set. Used by rollouts and by every
 * targeted admin call, so both resolve the same names the same way.
 */
export function resolveTargets(agents: readonly AgentRecord[], t: TargetSpec, field = { hosts: 'targets.hosts', exclude: 'targets.exclude' }): AgentRecord[] {
  const byName = (name: string, what: string): AgentRecord => {
    const byId = agents.find((a) => a.id === name);
    if (byId) return byId;
    const named = agents.filter((a) => a.hostname === name);
    if (named.length === 1) return named[0]!;
    if (named.length > 1) {
      throw new FerryError(ErrorCode.InvalidArgument, `${what} "${name}" names ${named.length} agents (${named.map((a) => a.id).join(', ')})`, 'use the agent id instead');
    }
    // A usage error like a selector that matches nothing (exit 2 on every command): the operator mistyped a target.
    throw new FerryError(ErrorCode.InvalidArgument, `${what} "${name}" is not an enrolled agent (by id or hostname)`, 'list agents with `ferry agents ls`');
  };
  const out = new Map<string, AgentRecord>();
  for (const h of t.hosts) {
    const a = byName(h, field.hosts);
    out.set(a.id, a);
  }
  if (t.selector !== null) {
    const sel = parseSelector(t.selector);
    const matched = agents.filter((a) => sel.matches(a.labels))
      .sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id));
    for (const a of matched) if (!out.has(a.id)) out.set(a.id, a);
  }
  for (const x of t.exclude) out.delete(byName(x, field.exclude).id);
  return [...out.values()];
}

/**
 * The agents an exec, plan run, prefetch or `--list-hosts` acts on: checks
 * the request (refusing one without targets), resolves it, and refuses a set
 * that is empty — with the same errors on every command.
 */
export function selectTargets(agents: readonly AgentRecord[], req: TargetRequest, command: string, example: string): AgentRecord[] {
  const t = checkTargets({ ...req, selector: req.selector || undefined }, command, example);
  const spec: TargetSpec = { selector: t.all ? '' : t.selector || null, hosts: t.hosts, exclude: [] };
  const out = resolveTargets(agents, spec, { hosts: '--host', exclude: '--exclude' });
  if (out.length === 0) throw noTargetsMatched({ ...spec, all: t.all });
  return out;
}
