import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { OperatorStore, type OperatorRole } from '../store/operators.js';
import type { ControllerContext } from './context.js';
import { CallBoundary } from './call-boundary.js';
import { authenticatePeer, type CallWithAuth } from './peer-auth.js';

/** What a method does to the controller's state: `read` leaves it as it was; `write` changes it (and is audited). */
export type Access = 'read' | 'write';

/**
 * Every operator method, classified — the one place that says who may call
 * what. A method missing here is refused to everyone (also on the local
 * socket), so a new RPC cannot ship open by accident; a unit test checks
 * this table against the generated Admin and Rollouts definitions. Every
 * `write` handler records an audit entry with the caller's name.
 */
export const METHOD_ACCESS: Readonly<Record<string, Access>> = {
  '/ferry.v1.Admin/CreateToken': 'write',
  '/ferry.v1.Admin/ListTokens': 'read',
  '/ferry.v1.Admin/RevokeToken': 'write',
  '/ferry.v1.Admin/ListAgents': 'read',
  '/ferry.v1.Admin/ResolveTargets': 'read',
  '/ferry.v1.Admin/LabelAgents': 'write',
  '/ferry.v1.Admin/RevokeAgent': 'write',
  '/ferry.v1.Admin/AllowReauth': 'write',
  '/ferry.v1.Admin/RemoveAgent': 'write',
  // Issuing a certificate is a write: a viewer must not mint itself an admin.
  '/ferry.v1.Admin/IssueOperatorCert': 'write',
  '/ferry.v1.Admin/ListOperators': 'read',
  '/ferry.v1.Admin/RevokeOperator': 'write',
  // Viewers may read the audit log: seeing who changed what is reading.
  '/ferry.v1.Admin/ListAudit': 'read',
  // Runs commands on hosts.
  '/ferry.v1.Admin/Exec': 'write',
  '/ferry.v1.Admin/AddSigningKey': 'write',
  '/ferry.v1.Admin/ListSigningKeys': 'read',
  '/ferry.v1.Admin/MissingChunks': 'read',
  '/ferry.v1.Admin/UploadChunks': 'write',
  '/ferry.v1.Admin/CommitBundle': 'write',
  '/ferry.v1.Admin/ListBundles': 'read',
  '/ferry.v1.Admin/GetBundle': 'read',
  '/ferry.v1.Admin/RemoveBundle': 'write',
  '/ferry.v1.Admin/LintBundle': 'read',
  // Serving a bundle over HTTPS (or ceasing to) changes what hosts can pull.
  '/ferry.v1.Admin/PublishBundle': 'write',
  '/ferry.v1.Admin/ListPublished': 'read',
  '/ferry.v1.Admin/UnpublishBundle': 'write',
  // Moves bytes onto hosts' disks.
  '/ferry.v1.Admin/Prefetch': 'write',
  '/ferry.v1.Admin/PushPlan': 'write',
  '/ferry.v1.Admin/ListPlans': 'read',
  '/ferry.v1.Admin/GetPlan': 'read',
  // Also with check: true: a check still runs the plan's guards on hosts.
  '/ferry.v1.Admin/RunPlan': 'write',
  '/ferry.v1.Admin/ListJobs': 'read',
  '/ferry.v1.Admin/GetJob': 'read',
  '/ferry.v1.Admin/JobLogs': 'read',
  // Opens a browser session: like issuing a certificate, so an admin's act.
  '/ferry.v1.Admin/CreateConsoleLogin': 'write',
  // Changes where hosts fetch bundle bytes from.
  '/ferry.v1.Admin/EnableRelay': 'write',
  '/ferry.v1.Admin/DisableRelay': 'write',
  '/ferry.v1.Admin/ListRelays': 'read',
  '/ferry.v1.Admin/ControllerStatus': 'read',
  '/ferry.v1.Rollouts/Create': 'write',
  '/ferry.v1.Rollouts/List': 'read',
  '/ferry.v1.Rollouts/Get': 'read',
  '/ferry.v1.Rollouts/Pause': 'write',
  '/ferry.v1.Rollouts/Resume': 'write',
  '/ferry.v1.Rollouts/Abort': 'write',
  '/ferry.v1.Rollouts/Approve': 'write',
  '/ferry.v1.Rollouts/Retry': 'write',
  '/ferry.v1.Rollouts/Logs': 'read',
  '/ferry.v1.Rollouts/Watch': 'read',
};

/** How often an open operator stream's certificate is checked again against the store. */
export const OPERATOR_RECHECK_MS = 5_000;

/** The least role that may call a method of each kind. */
const ROLE_FOR: Record<Access, OperatorRole> = { read: 'viewer', write: 'admin' };

/** Whether `role` may call `method`; throws PERMISSION_DENIED naming the method and the role it needs. */
export function checkAccess(method: string, role: OperatorRole, who: string): void {
  const access = METHOD_ACCESS[method];
  if (!access) {
    throw new FerryError(ErrorCode.PermissionDenied, `${method} is not classified read or write, so nobody may call it`,
      'a controller bug: add the method to METHOD_ACCESS in controller/src/services/operator-call.ts');
  }
  const need = ROLE_FOR[access];
  if (need === 'admin' && role !== 'admin') {
    throw new FerryError(ErrorCode.PermissionDenied, `${method} needs the admin role; ${who} has the ${role} role`,
      'ask an admin for a certificate with `ferry operator cert NAME --role admin`');
  }
}

/** Handlers of every call kind behind the one error boundary, with the caller's name and role checked first. */
export type OperatorCalls = Pick<CallBoundary, 'unary' | 'serverStream' | 'clientStream'>;

/** How the operator APIs learn who calls. */
export interface OperatorCallOptions {
  /** The TLS port: every call presents an operator certificate. */
  requireOperatorCert: boolean;
  /**
   * In-process callers (the web console, controller/src/console/): names
   * the caller and its role from the call, or throws UNAUTHENTICATED (a
   * session that ended). The role is checked against METHOD_ACCESS exactly
   * as a certificate's, and again while a stream is open.
   */
  identify?: (call: CallWithAuth) => Promise<{ who: string; role: OperatorRole }>;
}

/**
 * The operator APIs' (Admin, Rollouts) shared front door. With
 * `requireOperatorCert` (the TLS port) every call must present an operator
 * certificate that the store knows, has not revoked, and whose role allows
 * the method; on the local Unix socket the socket's file mode (0600) is the
 * access control, and the caller is "local" with the admin role; with
 * `identify` (the web console) the session names the caller and its role.
 */
export function operatorCalls(ctx: Pick<ControllerContext, 'ca' | 'log' | 'db' | 'metrics'>, opts: OperatorCallOptions, api: string): OperatorCalls {
  const operators = new OperatorStore(ctx.db);
  const caller = async (call: CallWithAuth, method: string): Promise<string> => {
    if (opts.identify) {
      const { who, role } = await opts.identify(call);
      checkAccess(method, role, who);
      return who;
    }
    if (!opts.requireOperatorCert) {
      checkAccess(method, 'admin', 'local');
      return 'local';
    }
    const peer = authenticatePeer(call, ctx.ca, 'operator');
    // Looked up on every call, in the shared store: a revocation holds from the next call on, on every replica.
    const op = await operators.authorize(peer);
    const who = `operator:${op.name}`;
    checkAccess(method, op.role, who);
    return who;
  };
  // Streams (exec, run, rollout watch) are checked again while open, so a
  // revoked operator's stream ends within OPERATOR_RECHECK_MS on every replica.
  const boundary = new CallBoundary({ api, log: ctx.log, metrics: ctx.metrics, caller, recheckMs: opts.requireOperatorCert || opts.identify ? OPERATOR_RECHECK_MS : undefined });
  return {
    unary: boundary.unary.bind(boundary),
    serverStream: boundary.serverStream.bind(boundary),
    clientStream: boundary.clientStream.bind(boundary),
  };
}
