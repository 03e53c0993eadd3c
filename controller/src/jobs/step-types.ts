import { parse } from 'yaml';
import type { JobStart } from '../../../common/src/gen/ferry/v1/session.js';

/** Plans whose step types are remembered (one per plan in use; rollouts of 1,000 hosts share one). */
const MAX_PLANS = 64;
const cache = new Map<string, ReadonlyMap<string, string>>();

/**
 * The type of step `stepId` (image.import, systemd.unit, …) in the plan a
 * job was started with, for the step-result metric. The plan was validated
 * when it was stored, so only its steps' ids and types are read; each plan
 * text is read once (keyed by its signature). "unknown" when the start is
 * not held (a job re-loaded after a controller restart) or names no such
 * step.
 */
export function stepTypeOf(start: JobStart | undefined, stepId: string): string {
  const plan = start?.plan;
  if (!plan) return 'unknown';
  const key = plan.signature || plan.plan;
  let types = cache.get(key);
  if (!types) {
    const m = new Map<string, string>();
    try {
      const doc = parse(plan.plan) as { steps?: Array<{ id?: unknown; type?: unknown }> } | null;
      for (const s of doc?.steps ?? []) if (typeof s?.id === 'string' && typeof s.type === 'string') m.set(s.id, s.type);
    } catch {
      // A plan that does not parse here ran nowhere either; its steps count as unknown.
    }
    if (cache.size >= MAX_PLANS) cache.delete(cache.keys().next().value!);
    cache.set(key, m);
    types = m;
  }
  return types.get(stepId) ?? 'unknown';
}
