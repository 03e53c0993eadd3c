import { randomBytes } from 'node:crypto';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { JobBundle, SignedPlan } from '../../../common/src/gen/ferry/v1/session.js';
import { noTargetsMatched } from '../../../common/src/targets.js';
import { resolveParams } from '../../../common/src/plan/expand-params.js';
import { formatProblems } from '../../../common/src/plan/plan-problems.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { PlanStore } from '../plans/plan-store.js';
import type { AgentStore } from '../store/agents.js';
import { resolveTargets } from '../store/resolve-targets.js';
import type { DispatchInfo } from './active-rollout.js';
import type { Clock } from './clock.js';
import type { HostModel } from './model.js';
import type { StoredRollout } from './rollout-store.js';
import { parseRolloutSpec } from './spec.js';
import { assignWaves, waveSizes } from './waves.js';
import { NO_PLAN, releasesFor } from './upgrade-hosts.js';
import type { RolloutSpec } from './spec.js';

/** What creating a rollout reads: plans, bundles, agents, and the time. */
export interface CreateDeps {
  plans: Pick<PlanStore, 'require' | 'byId' | 'jobBundles'>;
  bundles: Pick<BundleStore, 'byId' | 'list'>;
  agents: Pick<AgentStore, 'list'>;
  clock: Clock;
}

/** The signed plan a rollout was created with (an exact version, not the latest of its name). */
async function signedPlan(d: Pick<CreateDeps, 'plans'>, s: StoredRollout): Promise<SignedPlan> {
  const p = await d.plans.byId(s.planId);
  if (!p) {
    throw new FerryError(ErrorCode.NotFound, `plan ${s.planName} version ${s.planId} of rollout ${s.model.id} is no longer on the controller`,
      `push that plan version again, or abort the rollout with \`ferry rollout abort ${s.model.id}\``);
  }
  return p.signed;
}

/** What hosts are sent, rebuilt from the store (after a restart). */
export async function dispatchInfo(d: Pick<CreateDeps, 'plans' | 'bundles'>, s: StoredRollout): Promise<DispatchInfo> {
  const bundles: JobBundle[] = [];
  for (const b of s.bundles) {
    // A bundle removed since: the job still names it; hosts that staged it run, others fail clearly.
    const stored = await d.bundles.byId(b.bundleId);
    bundles.push({ as: b.as, bundleId: b.bundleId, signed: stored?.signed });
  }
  // An agent upgrade's bundles are its releases, one per architecture (`as` is the architecture).
  if (s.spec.upgrade) return { signed: NO_PLAN, params: {}, bundles, upgrade: s.spec.upgrade };
  return { signed: await signedPlan(d, s), params: s.spec.params, bundles };
}

/**
 * Validates a spec against the controller (plan, params, bundles, targets)
 * and builds the new rollout: targets in order, assigned to waves, all
 * pending (prefetching when the spec asks for it and the plan has bundles).
 */
export async function buildRollout(d: CreateDeps, specText: string, file: string, who: string): Promise<{ stored: StoredRollout; dispatch: DispatchInfo }> {
  const { spec, problems } = parseRolloutSpec(specText, file);
  if (!spec) throw new FerryError(ErrorCode.InvalidArgument, `rollout spec ${file} is invalid:\n${formatProblems(problems)}`, 'fix every problem listed and create it again');
  if (spec.upgrade) return buildUpgradeRollout(d, spec, specText, who);
  const p = await d.plans.require(spec.plan);
  resolveParams(p.plan, spec.params); // refuse bad params before anything is stored
  const bundles = await d.plans.jobBundles(p);
  const targets = resolveTargets(await d.agents.list(), spec.targets);
  if (targets.length === 0) {
    throw noTargetsMatched(spec.targets);
  }
  const sizes = waveSizes(spec.strategy.waves, targets.length);
  const waves = assignWaves(sizes);
  const prefetch = spec.strategy.prefetch && bundles.length > 0;
  const id = `ro-${randomBytes(4).toString('hex')}`;
  const now = d.clock.now();
  const hosts: HostModel[] = targets.map((a, i) => ({
    agentId: a.id, hostname: a.hostname, wave: waves[i]!, order: i, state: prefetch ? 'prefetching' : 'pending', attempt: 1,
    hostJobId: null, eligibleAt: null, message: '', startedAt: null, finishedAt: null,
  }));
  return {
    stored: {
      model: { id, state: prefetch ? 'prefetching' : 'running', paused: false, pauseReason: '', currentWave: -1, gateUntil: null, waveSizes: sizes, strategy: spec.strategy, hosts },
      name: spec.name, spec, specText, planId: p.id, planName: p.plan.name, jobId: `j-${id}`,
      bundles: bundles.map((b) => ({ as: b.as, bundleId: b.bundleId })), createdAt: now, createdBy: who, updatedAt: now, finishedAt: null,
    },
    dispatch: { signed: p.signed, params: spec.params, bundles },
  };
}

/**
 * An agent-upgrade rollout: the targets that do not run the version yet,
 * each sent the release for its architecture (upgrade-hosts.ts). Targets
 * already on the version are left out (said in the created event); no
 * prefetch (each host stages only its own architecture's release when its
 * wave runs).
 */
async function buildUpgradeRollout(d: CreateDeps, spec: RolloutSpec, specText: string, who: string): Promise<{ stored: StoredRollout; dispatch: DispatchInfo }> {
  const up = spec.upgrade!;
  if (spec.strategy.prefetch) {
    throw new FerryError(ErrorCode.InvalidArgument, 'an agent upgrade takes no prefetch: each host stages its own release when its wave starts', 'leave out strategy.prefetch (--prefetch)');
  }
  const all = resolveTargets(await d.agents.list(), spec.targets);
  if (all.length === 0) throw noTargetsMatched(spec.targets);
  const targets = all.filter((a) => a.agentVersion !== up.version);
  if (targets.length === 0) {
    throw new FerryError(ErrorCode.InvalidArgument, `every target (${all.length}) already runs ferry-agent ${up.version}`, 'nothing to do; `ferry agents ls -o wide` shows versions');
  }
  const bundles = await releasesFor(d.bundles, up, targets);
  const sizes = waveSizes(spec.strategy.waves, targets.length);
  const waves = assignWaves(sizes);
  const id = `ro-${randomBytes(4).toString('hex')}`;
  const now = d.clock.now();
  const hosts: HostModel[] = targets.map((a, i) => ({
    agentId: a.id, hostname: a.hostname, wave: waves[i]!, order: i, state: 'pending', attempt: 1,
    hostJobId: null, eligibleAt: null, message: '', startedAt: null, finishedAt: null,
  }));
  return {
    stored: {
      model: { id, state: 'running', paused: false, pauseReason: '', currentWave: -1, gateUntil: null, waveSizes: sizes, strategy: spec.strategy, hosts },
      name: spec.name, spec, specText, planId: '', planName: `ferry-agent ${up.version}`, jobId: `j-${id}`,
      bundles: bundles.map((b) => ({ as: b.as, bundleId: b.bundleId })), createdAt: now, createdBy: who, updatedAt: now, finishedAt: null,
    },
    dispatch: { signed: NO_PLAN, params: {}, bundles, upgrade: up },
  };
}
