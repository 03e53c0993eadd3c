/**
 * Helpers for step e2e tests: run a step executor inside a simulated host through
 * run-step.js and get its StepOutcome back, with the streamed lines and the time it took.
 */
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { Host } from '../harness/index.js';
import { RUN_STEP } from './run-step.js';

export interface StepRun {
  outcome: StepOutcome;
  /** Lines the executor streamed via ctx.output ("[stdout] ..."/"[stderr] ..."). */
  lines: string;
  ms: number;
}

export interface StepRunOptions {
  check?: boolean;
  bundles?: Record<string, string>;
  /** Directory inside the host with ca.crt, agent.crt, agent.key: the step's fleet TLS files. */
  fleet?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Runs `type` with `args` inside `host`; throws only when no outcome came back. */
export async function runStep(host: Host, type: string, args: Record<string, unknown>, opts: StepRunOptions = {}): Promise<StepRun> {
  const argv = ['node', RUN_STEP, type, JSON.stringify(args)];
  if (opts.check) argv.push('--check');
  if (opts.fleet) argv.push('--fleet', opts.fleet);
  for (const [a, d] of Object.entries(opts.bundles ?? {})) argv.push('--bundle', `${a}=${d}`);
  const t0 = Date.now();
  const r = await host.exec(argv, { timeoutMs: opts.timeoutMs ?? 120_000, ...(opts.env ? { env: opts.env } : {}) });
  const ms = Date.now() - t0;
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let outcome: StepOutcome;
  try {
    outcome = JSON.parse(last) as StepOutcome;
  } catch {
    throw new Error(`${type} in ${host.name}: no outcome (exit ${r.exitCode})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return { outcome, lines: r.stderr, ms };
}

/** One line for the test log: status, time and the outcome's first line. */
export function summary(label: string, run: StepRun): string {
  return `      ${label}: ${run.outcome.status} in ${run.ms} ms — ${run.outcome.message.split('\n')[0]}`;
}
