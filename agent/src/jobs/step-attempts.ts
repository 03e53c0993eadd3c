import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { asFerryError, ErrorCode } from '../../../common/src/errors.js';
import { formatDuration } from '../../../common/src/duration.js';
import { expandStep } from '../../../common/src/plan/expand-step.js';
import type { StepSchema } from '../../../common/src/plan/step-schema.js';
import type { Plan, PlanStep, StepOutcome } from '../../../common/src/plan/types.js';
import { matchesWhen } from '../../../common/src/plan/when.js';
import type { StepContext, StepExecutor } from '../steps/step.js';
import { commandText, runPlanCommand } from '../steps/sys/run.js';

/** Values templates may refer to while a step's args are expanded. */
export interface StepScope {
  plan: Plan;
  params: Record<string, unknown>;
  bundleDirs: Record<string, string>;
  facts: Record<string, unknown>;
  labels: Record<string, string>;
}

/** Step types this agent can run (tests pass their own). */
export interface StepRunDeps {
  executors: ReadonlyMap<string, StepExecutor<unknown>>;
  schemas: ReadonlyMap<string, StepSchema<unknown>>;
}

function failed(message: string, errorCode?: ErrorCode): StepOutcome {
  return { status: 'failed', message, errorCode };
}

/**
 * Runs an `unless` / `onlyIf` guard: its own process group, the step's
 * timeout, and the same kill rules as the step (a timed-out guard's children
 * go with it). True when it exits 0; a guard that cannot start, times out or
 * is cancelled gives no answer, so the step fails instead of guessing.
 */
async function guardPasses(kind: 'unless' | 'onlyIf', argv: string[], base: Omit<StepContext, 'signal'>, signal: AbortSignal, timeoutMs: number): Promise<boolean | StepOutcome> {
  const text = commandText({ argv });
  const r = await runPlanCommand({ signal, output: base.output, track: base.track }, { argv }, { timeoutMs, prefix: `[${kind}] ` });
  if (r.cancelled) return failed(`cancelled while running the ${kind} guard ${text}`, ErrorCode.Cancelled);
  if (r.startError) return failed(`${kind} guard could not run: ${r.startError}`, ErrorCode.StepGuard);
  if (r.timedOut) return failed(`${kind} guard ${text} timed out after ${formatDuration(timeoutMs)}; its process group was stopped`, ErrorCode.StepGuard);
  return r.exitCode === 0;
}

/**
 * One step with its conditions, guards, timeout and retries. Never throws:
 * whatever goes wrong becomes a failed outcome whose message says what and
 * where, so the job records it and stops.
 */
export async function runStep(planStep: PlanStep, base: Omit<StepContext, 'signal'>, jobSignal: AbortSignal, deps: StepRunDeps, scope: StepScope): Promise<StepOutcome> {
  if (planStep.when && !matchesWhen(planStep.when, scope.labels, scope.facts)) {
    return { status: 'skipped', message: 'condition (when) does not match this host' };
  }
  const executor = deps.executors.get(planStep.type);
  const schema = deps.schemas.get(planStep.type);
  if (!executor || !schema) return failed(`this agent has no step type "${planStep.type}"`, ErrorCode.StepUnknownType);
  let args: unknown;
  let step: PlanStep;
  try {
    step = expandStep(planStep, { params: scope.params, facts: scope.facts, labels: scope.labels, bundleDir: (a) => scope.bundleDirs[a] });
    const parsed = schema.parse(step.args);
    if (!parsed.args) return failed(parsed.problems.map((p) => `${p.path ? `${p.path}: ` : ''}${p.message}`).join('; '), ErrorCode.StepInvalidArgs);
    args = parsed.args;
  } catch (err) {
    return failed(asFerryError(err).describe(), ErrorCode.StepInvalidArgs);
  }
  try {
    if (step.guards.creates && existsSync(join(base.root, step.guards.creates))) {
      return { status: 'unchanged', message: `${step.guards.creates} exists (creates guard)` };
    }
    if (step.guards.unless) {
      const g = await guardPasses('unless', step.guards.unless, base, jobSignal, step.timeoutMs);
      if (g === true) return { status: 'unchanged', message: `guard passed: ${step.guards.unless.join(' ')} (unless)` };
      if (g !== false) return g;
    }
    if (step.guards.onlyIf) {
      const g = await guardPasses('onlyIf', step.guards.onlyIf, base, jobSignal, step.timeoutMs);
      if (g === false) return { status: 'skipped', message: `guard failed: ${step.guards.onlyIf.join(' ')} (onlyIf)` };
      if (g !== true) return g;
    }
  } catch (err) {
    return failed(`guard could not run: ${asFerryError(err).message}`, ErrorCode.StepGuard);
  }

  let last: StepOutcome = failed('not run');
  for (let attempt = 1; attempt <= step.retries + 1; attempt++) {
    if (jobSignal.aborted) return failed('cancelled', ErrorCode.Cancelled);
    const timeout = AbortSignal.timeout(step.timeoutMs);
    const signal = AbortSignal.any([jobSignal, timeout]);
    try {
      last = await executor.run(args, { ...base, signal });
    } catch (err) {
      const fe = asFerryError(err);
      last = failed(fe.describe(), fe.code);
    }
    if (timeout.aborted && !jobSignal.aborted) last = failed(`timed out after ${formatDuration(step.timeoutMs)}`, 'DEADLINE_EXCEEDED');
    if (last.status !== 'failed' || jobSignal.aborted) break;
    if (attempt <= step.retries) {
      base.output(`[ferry] step ${step.id} failed (attempt ${attempt}/${step.retries + 1}): ${last.message}; retrying in ${formatDuration(step.retryDelayMs)}`, 'stderr');
      await new Promise((r) => setTimeout(r, step.retryDelayMs));
    }
  }
  return last;
}
