import { AdminService, type AdminServer } from '../../../common/src/gen/ferry/v1/admin.js';
import { RolloutsService, type RolloutsServer, type RolloutUpdate } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { rolloutsService } from '../services/rollouts.js';
import { adminService } from '../services/admin.js';
import type { ControllerContext } from '../services/context.js';
import { callStream, callUnary, consoleIdentity, type ConsoleCaller, type InProcessStream } from './invoke.js';

/** The rollout actions the console offers, as the Rollouts API names them. */
export const ROLLOUT_ACTIONS = ['pause', 'resume', 'abort', 'approve', 'retry'] as const;
export type RolloutAction = (typeof ROLLOUT_ACTIONS)[number];

/**
 * What the console's pages read and do, as calls on the same Admin and
 * Rollouts handlers the gRPC servers run (see invoke.ts): roles, errors
 * and the audit log are theirs.
 */
export class ConsoleApi {
  private readonly admin: AdminServer;
  private readonly rollouts: RolloutsServer;

  constructor(ctx: ControllerContext) {
    const opts = { requireOperatorCert: false, identify: consoleIdentity };
    this.admin = adminService(ctx, opts);
    this.rollouts = rolloutsService(ctx, ctx.rollouts, opts);
  }

  agents(c: ConsoleCaller, selector = '') {
    return callUnary(AdminService.listAgents, this.admin.listAgents, { selector, includeRevoked: true }, c).then((r) => r.agents);
  }

  jobs(c: ConsoleCaller, limit: number, agentId = '', kind = '') {
    return callUnary(AdminService.listJobs, this.admin.listJobs, { limit, kind, agentId }, c).then((r) => r.jobs);
  }

  job(c: ConsoleCaller, id: string) {
    return callUnary(AdminService.getJob, this.admin.getJob, { id }, c);
  }

  jobLogs(c: ConsoleCaller, id: string, host: string) {
    return callUnary(AdminService.jobLogs, this.admin.jobLogs, { id, host }, c).then((r) => r.lines);
  }

  bundles(c: ConsoleCaller) {
    return callUnary(AdminService.listBundles, this.admin.listBundles, {}, c).then((r) => r.bundles);
  }

  plans(c: ConsoleCaller) {
    return callUnary(AdminService.listPlans, this.admin.listPlans, {}, c).then((r) => r.plans);
  }

  rolloutList(c: ConsoleCaller, limit: number) {
    return callUnary(RolloutsService.list, this.rollouts.list, { limit }, c).then((r) => r.rollouts);
  }

  rollout(c: ConsoleCaller, id: string) {
    return callUnary(RolloutsService.get, this.rollouts.get, { id, afterSeq: 0 }, c);
  }

  rolloutLogs(c: ConsoleCaller, id: string, host: string) {
    return callUnary(RolloutsService.logs, this.rollouts.logs, { id, host, attempt: 0 }, c).then((r) => r.lines);
  }

  /** The same stream `ferry rollout watch` reads: snapshots and events after `afterSeq`. */
  watch(c: ConsoleCaller, id: string, afterSeq: number, onUpdate: (u: RolloutUpdate) => void): InProcessStream {
    return callStream(RolloutsService.watch, this.rollouts.watch, { id, afterSeq }, c, onUpdate);
  }

  /** One operator action on a rollout; the handler checks the role (admin) and audits it. */
  act(c: ConsoleCaller, id: string, action: RolloutAction, opts: { reason?: string; hosts?: string[] }) {
    const req = { id, reason: opts.reason ?? '', hosts: opts.hosts ?? [], force: false };
    const def = RolloutsService[action];
    return callUnary(def, this.rollouts[action], req, c);
  }
}
