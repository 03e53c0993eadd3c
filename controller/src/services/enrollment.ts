import { randomBytes } from 'node:crypto';
import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { EnrollmentServer, EnrollRequest, EnrollResponse } from '../../../common/src/gen/ferry/v1/enrollment.js';
import { toServiceError } from '../../../common/src/grpc-status.js';
import { labelsToList, type Labels } from '../../../common/src/labels.js';
import { checkCsr } from '../pki/csr.js';
import type { ControllerContext } from './context.js';

function newAgentId(): string {
  return `ag-${randomBytes(6).toString('hex')}`;
}

/** Label-safe form of a hostname (hostnames are mostly safe already). */
function labelValue(s: string): string {
  return s.replace(/[^A-Za-z0-9._:/-]/g, '-').slice(0, 63);
}

/**
 * Enrollment: token + CSR + facts in, certificate out. The CSR is checked
 * and the certificate signed before the token is touched, and the token use
 * and the agent row are written in one transaction, so a refused request
 * never costs a use and a used token always leaves an agent behind.
 */
export function enrollmentService(ctx: ControllerContext): EnrollmentServer {
  return {
    enroll(call: ServerUnaryCall<EnrollRequest, EnrollResponse>, callback: sendUnaryData<EnrollResponse>) {
      enroll(ctx, call.request, call.getPeer()).then(
        (res) => callback(null, res),
        (err) => {
          ctx.log.info({ peer: call.getPeer(), code: (err as FerryError).code, err: (err as Error).message }, 'enrollment refused');
          callback(toServiceError(err));
        },
      );
    },
  };
}

async function enroll(ctx: ControllerContext, req: EnrollRequest, peer: string): Promise<EnrollResponse> {
  if (!req.token) throw new FerryError(ErrorCode.TokenMalformed, 'no token in the enrollment request', 'run `ferry-agent join <join-string>`');
  if (!req.facts?.hostname) throw new FerryError(ErrorCode.InvalidArgument, 'enrollment request carries no host facts');
  const csr = await checkCsr(req.csrPem);
  for (const name of csr.claimedNames) {
    const m = /^(?:urn:ferry:agent:)?(ag-[0-9a-f]{12})$/.exec(name);
    if (m && (await ctx.agents.get(m[1]!))) {
      throw new FerryError(ErrorCode.IdentityClaimed, `the CSR claims the identity of existing agent ${m[1]}`,
        'identities are assigned by the controller; request a certificate without naming one');
    }
  }
  const id = newAgentId();
  const issued = await ctx.ca.issue({ publicKey: csr.publicKey, commonName: id, role: 'agent', ttlMs: ctx.config.agentCertTtlMs });
  const now = Date.now();
  const labels: Labels = await ctx.db.tx(async (db) => {
    const token = await ctx.tokens.consume(db, req.token, now);
    const l: Labels = {
      ...token.labels,
      'ferry/id': id,
      'ferry/hostname': labelValue(req.facts!.hostname),
      'ferry/arch': labelValue(req.facts!.arch),
    };
    await ctx.agents.insert(db, {
      id, hostname: req.facts!.hostname, labels: l, facts: req.facts!, agentVersion: req.agentVersion,
      tokenId: token.id, enrolledAt: now, certSerial: issued.serial, certNotAfter: issued.notAfter.getTime(),
    });
    return l;
  });
  await ctx.audit.record(`token:${req.token.split('.')[1] ?? '?'}`, 'agent.enroll', id, { hostname: req.facts.hostname, peer });
  ctx.log.info({ agent: id, hostname: req.facts.hostname, peer }, 'agent enrolled');
  return {
    agentId: id, certPem: issued.certPem, caPem: ctx.ca.certPem, labels: labelsToList(labels),
    operatorKeys: (await ctx.bundles.keys()).map((k) => k.publicPem), serverTimeMs: Date.now(),
  };
}
