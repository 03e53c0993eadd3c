import type { StepExecutor } from './step.js';

/**
 * Every step executor this agent has, by type. Each type's argument schema is
 * in common/src/plan/steps/ and listed in common/src/plan/step-registry.ts.
 */
const executors: Array<StepExecutor<never>> = [];

export const STEP_EXECUTORS: ReadonlyMap<string, StepExecutor<unknown>> =
  new Map(executors.map((e) => [e.type, e as unknown as StepExecutor<unknown>]));
