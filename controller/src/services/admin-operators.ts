import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AdminServer, OperatorInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { checkCsr } from '../pki/csr.js';
import { OperatorStore, parseOperatorRole, type OperatorRecord } from '../store/operators.js';
import type { ControllerContext } from './context.js';
import type { OperatorCalls } from './operator-call.js';

type OperatorHandlers = Pick<AdminServer, 'issueOperatorCert' | 'listOperators' | 'revokeOperator' | 'listAudit'>;

const DEFAULT_TTL_MS = 30 * 86_400_000;
const MAX_AUDIT = 10_000;

function operatorInfo(r: OperatorRecord): OperatorInfo {
  return { name: r.name, role: r.role, serial: r.serial, issuedAtMs: r.issuedAt, expiresAtMs: r.notAfter, revokedAtMs: r.revokedAt ?? 0 };
}

/** Operator certificates (issue with a role, list, revoke) and the audit log. */
export function operatorHandlers(ctx: ControllerContext, kit: OperatorCalls): OperatorHandlers {
  const operators = new OperatorStore(ctx.db);
  return {
    issueOperatorCert: kit.unary(async (req, who) => {
      if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(req.name)) {
        throw new FerryError(ErrorCode.InvalidArgument, `operator name "${req.name}" is invalid`, 'use lowercase letters, digits, . _ -');
      }
      const role = parseOperatorRole(req.role, 'role');
      const csr = await checkCsr(req.csrPem);
      const issued = await ctx.ca.issue({
        publicKey: csr.publicKey, commonName: req.name, role: 'operator', operatorRole: role, ttlMs: req.ttlMs || DEFAULT_TTL_MS,
      });
      const rec = await operators.record({ name: req.name, role, serial: issued.serial, issuedAt: Date.now(), notAfter: issued.notAfter.getTime() });
      await ctx.audit.record(who, 'operator.cert', req.name, { serial: issued.serial, role });
      return { certPem: issued.certPem, caPem: ctx.ca.certPem, operator: operatorInfo(rec) };
    }),
    listOperators: kit.unary(async () => ({ operators: (await operators.list()).map(operatorInfo) })),
    revokeOperator: kit.unary(async (req, who) => {
      if (!req.nameOrSerial) throw new FerryError(ErrorCode.InvalidArgument, 'name the operator or the certificate serial to revoke', 'see them with `ferry operator ls`');
      const revoked = await operators.revoke(req.nameOrSerial);
      await ctx.audit.record(who, 'operator.revoke', req.nameOrSerial, { serials: revoked.map((r) => r.serial) });
      return { revoked: revoked.map(operatorInfo) };
    }),
    listAudit: kit.unary(async (req) => {
      const limit = Math.min(req.limit || 100, MAX_AUDIT);
      const rows = await ctx.audit.list(limit);
      return { entries: rows.map((r) => ({ atMs: Number(r.at), actor: r.actor, action: r.action, subject: r.subject, detailJson: r.detail })) };
    }),
  };
}
