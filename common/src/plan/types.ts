/**
 * The plan model shared by the controller (validation, storage, scheduling)
 * and the agent (execution). A plan is YAML; see docs in README "Plans".
 */
import type { ErrorCode } from '../errors.js';

/** Where something is in a plan file, for messages like `plan.yaml:12:7: ...` (1-based). */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** One problem found while validating a plan. Validation reports all of them at once. */
export interface PlanProblem extends SourcePos {
  message: string;
}

/** A typed plan parameter with an optional default. */
export interface PlanParam {
  name: string;
  type: 'string' | 'int' | 'bool' | 'list' | 'map';
  default?: unknown;
  required: boolean;
  description?: string;
}

/** A bundle a plan uses, by name and version; `as` is how steps refer to it. */
export interface BundleRef {
  as: string;
  name: string;
  version: string;
}

/** Host condition: every label must match, every fact path must equal. */
export interface WhenCondition {
  labels?: Record<string, string>;
  facts?: Record<string, string>;
}

/** Idempotency guards run on the host before the step (like Ansible's creates/removes and exec's unless). */
export interface StepGuards {
  /** Skip the step (unchanged) when this path exists. */
  creates?: string;
  /** Skip the step (unchanged) when this command exits 0. */
  unless?: string[];
  /** Run the step only when this command exits 0. */
  onlyIf?: string[];
}

/** One step as written in the plan; `args` are checked by the step type's schema. */
export interface PlanStep {
  id: string;
  type: string;
  args: Record<string, unknown>;
  when?: WhenCondition;
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  guards: StepGuards;
  pos: SourcePos;
}

export interface Plan {
  name: string;
  description: string;
  params: PlanParam[];
  bundles: BundleRef[];
  steps: PlanStep[];
}

/** What a step did. `unchanged` is how idempotency shows: a second run reports it. */
export type StepStatus = 'changed' | 'unchanged' | 'skipped' | 'failed';

export interface StepOutcome {
  status: StepStatus;
  /** Unified diff or a one-line summary of what changed (or would change, in check mode). */
  diff?: string;
  /** One line for people: what happened, or what went wrong and what to do next. */
  message: string;
  /** Stable error code when failed: one of Ferry's closed set (common/src/errors.ts), STEP_* for step-level failures. */
  errorCode?: ErrorCode;
}
