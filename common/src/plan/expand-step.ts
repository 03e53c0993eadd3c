/**
 * Expanding one step for one host, just before it runs: templates in args
 * and guards are replaced with this host's params, facts, labels and bundle
 * directories. The step's schema parses the expanded args again afterwards
 * (templated args can only be fully checked once their values are known).
 */
import { ErrorCode, FerryError } from '../errors.js';
import { expandString, expandValue, type ExpandContext } from './expand-template.js';
import type { PlanStep, StepGuards } from './types.js';

/** Guards are commands and paths: every expanded piece must be text. */
function expandText(s: string, ctx: ExpandContext, where: string, errors: string[]): string {
  const r = expandString(s, ctx);
  errors.push(...r.errors.map((e) => `${where}: ${e}`));
  if (r.errors.length) return s;
  if (r.value !== null && typeof r.value === 'object') {
    errors.push(`${where}: must expand to text, not a ${Array.isArray(r.value) ? 'list' : 'map'}`);
    return s;
  }
  return String(r.value);
}

/**
 * A copy of `step` with every template expanded. Throws
 * FerryError(InvalidArgument) naming the step, where it is in the plan, and
 * every unknown name at once.
 */
export function expandStep(step: PlanStep, ctx: ExpandContext): PlanStep {
  const errors: string[] = [];
  const args = expandValue(step.args, ctx);
  errors.push(...args.errors.map((e) => `args.${e}`));
  const guards: StepGuards = {};
  if (step.guards.creates !== undefined) guards.creates = expandText(step.guards.creates, ctx, 'creates', errors);
  if (step.guards.unless) guards.unless = step.guards.unless.map((a, i) => expandText(a, ctx, `unless[${i}]`, errors));
  if (step.guards.onlyIf) guards.onlyIf = step.guards.onlyIf.map((a, i) => expandText(a, ctx, `onlyIf[${i}]`, errors));
  if (errors.length) {
    const at = `${step.pos.file}:${step.pos.line}:${step.pos.col}`;
    throw new FerryError(
      ErrorCode.InvalidArgument,
      `step "${step.id}" (${at}) cannot be expanded:\n  ${errors.join('\n  ')}`,
      'declare the param or pass it with the rollout, label the host, or add | default("…") to the template',
    );
  }
  return { ...step, args: args.value as Record<string, unknown>, guards };
}
