import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AdminServer, OperatorInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { checkCsr } from '../pki/csr.js';
import { OperatorStore, parseOperatorRole, type OperatorRecord } from '../store/operators.js';
import { ConsoleAuth, LOGIN_TTL_MS, MAX_LOGIN_TTL_MS } from '../store/console-auth.js';
import type { ControllerContext } from './context.js';
import type { OperatorCalls } from './operator-call.js';

type OperatorHandlers = Pick<AdminServer, 'issueOperatorCert' | 'listOperators' | 'revokeOperator' | 'listAudit' | 'createConsoleLogin'>;

const DEFAULT_TTL_MS = 30 * 86_400_000;
const MAX_AUDIT = 10_000;

function operatorInfo(r: OperatorRecord): OperatorInfo {
  return { name: r.name, role: r.role, serial: r.serial, issuedAtMs: r.issuedAt, expiresAtMs: r.notAfter, revokedAtMs: r.revokedAt ?? 0 };
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Operator certificates (issue with a role, list, revoke), console login links, and the audit log. */
export function operatorHandlers(ctx: ControllerContext, kit: OperatorCalls): OperatorHandlers {
  const operators = new OperatorStore(ctx.db);
  const consoleAuth = new ConsoleAuth(ctx.db);
  return {
    issueOperatorCert: kit.unary(async (req, who) => {
      if (!NAME.test(req.name)) {
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
      // A revoked operator's browser sessions end with their certificates.
      const sessions = (await Promise.all([...new Set(revoked.map((r) => r.name))].map((n) => consoleAuth.endSessionsOf(n)))).reduce((a, b) => a + b, 0);
      await ctx.audit.record(who, 'operator.revoke', req.nameOrSerial, { serials: revoked.map((r) => r.serial), consoleSessions: sessions });
      return { revoked: revoked.map(operatorInfo) };
    }),
    createConsoleLogin: kit.unary(async (req, who) => {
      const base = ctx.consoleUrl?.();
      if (!base) {
        throw new FerryError(ErrorCode.Config, 'the web console is off on this controller',
          'start the controller with --console-addr HOST:PORT (or console-addr in its config file); see docs/console.md');
      }
      // By default the link names the caller: operator:alice gets a session as alice, the local socket as "local".
      const name = req.name || who.replace(/^operator:/, '');
      if (!NAME.test(name)) throw new FerryError(ErrorCode.InvalidArgument, `operator name "${name}" is invalid`, 'use lowercase letters, digits, . _ -');
      // Console actions are audited under the link's name: an operator may open
      // the console only as themselves. A link for someone else takes root on
      // the controller's host (the local socket), which can do anything anyway.
      if (who.startsWith('operator:') && name !== who.slice('operator:'.length)) {
        throw new FerryError(ErrorCode.PermissionDenied, `${who} cannot make a console login link for "${name}": the console acts, and is audited, as the link's operator`,
          `run \`ferry operator login\` without a name for your own link; a link for ${name} is made on the controller's host (\`sudo ferry operator login ${name}\`) or by ${name}`);
      }
      const role = parseOperatorRole(req.role, 'role');
      const ttlMs = req.ttlMs || LOGIN_TTL_MS;
      if (ttlMs < 1_000 || ttlMs > MAX_LOGIN_TTL_MS) {
        throw new FerryError(ErrorCode.InvalidArgument, `a login link lives between 1s and ${MAX_LOGIN_TTL_MS / 3_600_000}h, not ${ttlMs} ms`, 'e.g. --ttl 10m');
      }
      const { token, expiresAt } = await consoleAuth.createLogin(name, role, who, ttlMs, Date.now());
      await ctx.audit.record(who, 'console.login-link', name, { role, ttlMs });
      return { url: `${base}/login?token=${token}`, name, role, expiresAtMs: expiresAt };
    }),
    listAudit: kit.unary(async (req) => {
      const limit = Math.min(req.limit || 100, MAX_AUDIT);
      const rows = await ctx.audit.list(limit);
      return { entries: rows.map((r) => ({ atMs: Number(r.at), actor: r.actor, action: r.action, subject: r.subject, detailJson: r.detail })) };
    }),
  };
}
