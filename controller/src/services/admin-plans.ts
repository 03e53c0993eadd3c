import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AdminServer, JobEvent, RunPlanRequest } from '../../../common/src/gen/ferry/v1/admin.js';
import { resolveParams } from '../../../common/src/plan/expand-params.js';
import { describeTargets } from '../../../common/src/targets.js';
import { planInfo } from '../plans/plan-store.js';
import type { AdminKit } from './admin-bundles.js';
import type { ControllerContext } from './context.js';

type PlanHandlers = Pick<AdminServer, 'pushPlan' | 'listPlans' | 'getPlan' | 'runPlan'>;

/** Plans: push (validated, signature-checked), list, show, and run now on matching hosts. */
export function planHandlers(ctx: ControllerContext, kit: AdminKit): PlanHandlers {
  return {
    pushPlan: kit.unary(async (req, who) => {
      if (!req.signed) throw new FerryError(ErrorCode.InvalidArgument, 'no signed plan');
      const p = await ctx.plans.push(req.signed);
      await ctx.audit.record(who, 'plan.push', p.plan.name, { id: p.id, keyId: p.signed.keyId });
      return planInfo(p);
    }),
    listPlans: kit.unary(async () => ({ plans: (await ctx.plans.list()).map(planInfo) })),
    getPlan: kit.unary(async (req) => {
      const p = await ctx.plans.require(req.name);
      return { info: planInfo(p), signed: p.signed };
    }),
    runPlan: kit.serverStream<RunPlanRequest, JobEvent>(async (call, { who, signal }) => {
      const req = call.request;
      const p = await ctx.plans.require(req.plan);
      resolveParams(p.plan, req.params); // refuse bad params before touching any host
      const bundles = await ctx.plans.jobBundles(p);
      const targets = await kit.selectAgents(req, 'run', `ferry run ${p.plan.name} --selector role=edge`);
      await ctx.audit.record(who, req.check ? 'plan.check' : 'plan.run', p.plan.name, { targets: describeTargets(req), hosts: targets.length, params: req.params });
      const summary = await ctx.jobs.run({
        planId: p.id, signed: p.signed, params: req.params, bundles, check: req.check, concurrency: req.concurrency, createdBy: who, timeoutMs: req.timeoutMs,
      }, targets.map((a) => ({ agentId: a.id, hostname: a.hostname })), (ev) => { if (!signal.aborted) call.write(ev); }, signal);
      if (!signal.aborted) call.write({ agentId: '', hostname: '', event: { $case: 'summary', value: summary } });
    }),
  };
}
