/**
 * Error budgets. A budget is a count or a percentage, per wave (of the
 * wave's size) and overall (of all targets). The budget is EXCEEDED when
 * failures are strictly MORE than the allowance, as with AWS SSM's
 * MaxErrors ("stops when the number of errors exceeds the value") and
 * Ansible's max_fail_percentage ("aborts when failures exceed the
 * percentage"):
 *
 * - count N: exceeded at the (N+1)th failure. `0` means the first failure.
 * - percent P of a base B: allowance = floor(P × B / 100), exceeded at
 *   allowance + 1 failures. So 10% of 50 allows 5 and trips on the 6th
 *   (SSM's own example); 10% of 5 allows 0 (any failure is 20% > 10%).
 *   Rounding DOWN keeps "failed/B > P%" exact; rounding up would let a wave
 *   of 5 hosts lose one at a 10% budget, which is 20%.
 *
 * What counts as a failure: hosts in state `failed` — a failed step, a job
 * the agent lost, a prefetch that failed, or an offline host under
 * `offline: fail`. Skipped and cancelled hosts do not count. Hosts already
 * running when the budget trips are not stopped: they finish, and their
 * failures are counted too (SSM behaves the same with concurrency).
 */
import { amountText, floorOf, type Amount } from './amount.js';

export interface ErrorBudget {
  /** Allowance per wave, of the wave's size; null: no per-wave limit. */
  perWave: Amount | null;
  /** Allowance over the whole rollout, of all targets. */
  total: Amount;
}

/** Failures `budget` tolerates over `base` hosts. */
export function allowedFailures(budget: Amount, base: number): number {
  return floorOf(budget, base);
}

/** True when `failed` hosts exceed the allowance of `budget` over `base` hosts. */
export function exceeds(failed: number, budget: Amount, base: number): boolean {
  return failed > allowedFailures(budget, base);
}

export interface BudgetInput {
  wave: number;
  failedInWave: number;
  waveSize: number;
  failedTotal: number;
  total: number;
}

/** Why the budget is exceeded (for the pause reason and events), or undefined while within it. */
export function budgetExceeded(b: ErrorBudget, x: BudgetInput): string | undefined {
  if (b.perWave && exceeds(x.failedInWave, b.perWave, x.waveSize)) {
    return `error budget exceeded in wave ${x.wave + 1}: ${x.failedInWave} of ${x.waveSize} hosts failed, the wave allows ${allowedFailures(b.perWave, x.waveSize)} (perWave ${amountText(b.perWave)})`;
  }
  if (exceeds(x.failedTotal, b.total, x.total)) {
    return `error budget exceeded: ${x.failedTotal} of ${x.total} hosts failed, the rollout allows ${allowedFailures(b.total, x.total)} (total ${amountText(b.total)})`;
  }
  return undefined;
}
