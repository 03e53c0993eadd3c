import type { AdminServer } from '../../../common/src/gen/ferry/v1/admin.js';
import type { AdminKit } from './admin-bundles.js';
import type { ControllerContext } from './context.js';

type JobHandlers = Pick<AdminServer, 'listJobs' | 'getJob' | 'jobLogs'>;

/** Job history: every exec and plan run, newest first, with each host's end and log. */
export function jobHandlers(ctx: Pick<ControllerContext, 'history'>, kit: AdminKit): JobHandlers {
  return {
    listJobs: kit.unary(async (req) => ({ jobs: await ctx.history.list(Math.min(req.limit || 50, 1000), req.kind || undefined, req.agentId || undefined) })),
    getJob: kit.unary(async (req) => ctx.history.show(req.id)),
    jobLogs: kit.unary(async (req) => ({ lines: await ctx.history.logs(req.id, req.host) })),
  };
}
