import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { asFerryError } from '../../../common/src/errors.js';
import { formatDuration } from '../../../common/src/duration.js';
import { expandStep } from '../../../common/src/plan/expand-step.js';
import type { StepSchema } from '../../../common/src/plan/step-schema.js';
import type { Plan, PlanStep, StepOutcome } from '../../../common/src/plan/types.js';
import { matchesWhen } from '../../../common/src/plan/when.js';
import type { StepContext, StepExecutor } from '../steps/step.js';

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

function failed(message: string, errorCode?: string): StepOutcome {
  return { status: 'failed', message, errorCode };
}

/** Runs a guard command; true when it exits 0. Guards are bounded so a hung probe cannot stall a job. */
async function guardPasses(argv: string[], signal: AbortSignal): Promise<boolean> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, stdin: 'ignore', timeout: 60_000, cancelSignal: signal });
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
  if (!executor || !schema) return failed(`this agent has no step type "${planStep.type}"`, 'STEP_UNKNOWN_TYPE');
  let args: unknown;
  let step: PlanStep;
  try {
    step = expandStep(planStep, { params: scope.params, facts: scope.facts, labels: scope.labels, bundleDir: (a) => scope.bundleDirs[a] });
    const parsed = schema.parse(step.args);
    if (!parsed.args) return failed(parsed.problems.map((p) => `${p.path ? `${p.path}: ` : ''}${p.message}`).join('; '), 'STEP_INVALID_ARGS');
    args = parsed.args;
  } catch (err) {
    return failed(asFerryError(err).describe(), 'STEP_INVALID_ARGS');
  }
  try {
    if (step.guards.creates && existsSync(join(base.root, step.guards.creates))) {
      return { status: 'unchanged', message: `${step.guards.creates} exists (creates guard)` };
    }
    if (step.guards.unless && (await guardPasses(step.guards.unless, jobSignal))) {
      return { status: 'unchanged', message: `guard passed: ${step.guards.unless.join(' ')} (unless)` };
    }
    if (step.guards.onlyIf && !(await guardPasses(step.guards.onlyIf, jobSignal))) {
      return { status: 'skipped', message: `guard failed: ${step.guards.onlyIf.join(' ')} (onlyIf)` };
    }
  } catch (err) {
    return failed(`guard could not run: ${asFerryError(err).message}`, 'STEP_GUARD');
  }

  let last: StepOutcome = failed('not run');
  for (let attempt = 1; attempt <= step.retries + 1; attempt++) {
    if (jobSignal.aborted) return failed('cancelled', 'CANCELLED');
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
