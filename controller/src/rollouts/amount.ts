/**
 * Amounts in a rollout strategy: a host count (`5`) or a percentage of some
 * base (`"10%"`). Percentages are kept in hundredths of a percent so every
 * rounding below is exact integer arithmetic: 10% of 30 hosts is 3, never
 * 3.0000000000000004 rounded up to 4.
 */
export type Amount = { count: number } | { percent: number };

/** Hundredths of a percent: "12.5%" → 1250. */
function hundredths(a: { percent: number }): number {
  return Math.round(a.percent * 100);
}

/** `a` of `base`, rounded up: used for wave sizes and concurrency, so a non-zero percentage never yields 0 hosts. */
export function ceilOf(a: Amount, base: number): number {
  if ('count' in a) return a.count;
  // Integer numerator and denominator: the quotient is exact when whole, and a
  // fraction is at least 1/10000 away from the next integer, far above float error.
  return Math.ceil((hundredths(a) * base) / 10_000);
}

/** `a` of `base`, rounded down: used for error budgets, where the tolerance must not be rounded in the failures' favour. */
export function floorOf(a: Amount, base: number): number {
  if ('count' in a) return a.count;
  return Math.floor((hundredths(a) * base) / 10_000);
}

/** As written in a spec: `5` or `"10%"`. */
export function amountText(a: Amount): string {
  return 'count' in a ? String(a.count) : `${a.percent}%`;
}

/**
 * Reads `5`, `"5"` or `"12.5%"`. Returns an error text instead of throwing so
 * the spec parser can report every problem at once. Percentages are
 * 0 < p ≤ 100 with at most two decimals; counts are whole numbers ≥ `min`.
 */
export function parseAmount(v: unknown, min = 0): { value?: Amount; error?: string } {
  if (typeof v === 'number' || (typeof v === 'string' && /^\s*\d+\s*$/.test(v))) {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) return { error: `must be a whole number of at least ${min} or a percentage like "10%" (got ${JSON.stringify(v)})` };
    return { value: { count: n } };
  }
  if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d{1,2})?)\s*%\s*$/.exec(v);
    if (m) {
      const p = Number(m[1]);
      if (p <= 0 || p > 100) return { error: `percentage must be above 0% and at most 100% (got "${v}")` };
      return { value: { percent: p } };
    }
  }
  return { error: `must be a host count like 5 or a percentage like "10%" (got ${JSON.stringify(v)})` };
}
