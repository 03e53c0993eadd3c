import { createHash, randomBytes } from 'node:crypto';
import type * as x509 from '@peculiar/x509';
import { platformArch } from '../../../common/src/arch.js';
import { asFerryError, ErrorCode, FerryError } from '../../../common/src/errors.js';
import type {
  ChallengeRequest, ChallengeResponse, EnrollmentServer, EnrollRequest, EnrollResponse, ReauthRequest, ReauthResponse,
} from '../../../common/src/gen/ferry/v1/enrollment.js';
import { CallBoundary } from './call-boundary.js';
import type { ReauthService } from './reauth.js';
import { labelsToList, labelValue, type Labels } from '../../../common/src/labels.js';
import { checkCsr } from '../pki/csr.js';
import type { EnrollmentMetrics } from '../metrics/metrics.js';
import type { AgentRecord } from '../store/agents.js';
import type { ControllerContext } from './context.js';
import { Semaphore } from '../../../common/src/semaphore.js';
import { cpus } from 'node:os';

function newAgentId(): string {
  return `ag-${randomBytes(6).toString('hex')}`;
}

/**
 * Enrollment: token + CSR + facts in, certificate out. The CSR is checked
 * and the certificate signed before the token is touched, and the token use
 * and the agent row are written in one transaction, so a refused request
 * never costs a use and a used token always leaves an agent behind.
 */
export function enrollmentService(ctx: ControllerContext, reauth: ReauthService): EnrollmentServer {
  // CSR checks and signing are CPU-bound: a few at a time finish sooner than
  // hundreds interleaved, and a queued request whose caller has given up is
  // dropped before it costs a token use (it would orphan the use otherwise).
  const metrics: EnrollmentMetrics = ctx.metrics;
  const slots = new Semaphore(Math.max(2, cpus().length * 2));
  // Enrollment and re-authentication callers have no certificate yet: they are named by address.
  const anonymous = new CallBoundary({ api: 'enrollment', log: ctx.log, metrics: ctx.metrics, caller: (call) => call.getPeer() });
  return {
    enroll: anonymous.unary<EnrollRequest, EnrollResponse>(async (req, _who, { peer, signal, deadline }) => {
      const alive = () => !signal.aborted && Date.now() < deadline - 250;
      const busy = new FerryError(ErrorCode.Unavailable, 'the controller is busy enrolling other hosts and could not take this request in time; nothing was used',
        'retry in a moment (ferry-agent join retries by itself)');
      try {
        if (!(await slots.acquire(deadline - 250))) throw busy;
        try {
          if (!alive()) throw busy;
          const { res, outcome } = await enroll(ctx, req, peer, alive);
          metrics.enrollment({ outcome });
          return res;
        } finally {
          slots.release();
        }
      } catch (err) {
        const code = asFerryError(err).code;
        ctx.log.info({ peer, code, err: (err as Error).message }, 'enrollment refused');
        metrics.enrollment({ outcome: 'refused', code });
        throw err;
      }
    }),
    challenge: anonymous.unary<ChallengeRequest, ChallengeResponse>((req) => reauth.challenge(req)),
    reauthenticate: anonymous.unary<ReauthRequest, ReauthResponse>((req, _who, { peer }) => reauth.reauthenticate(req, peer)),
  };
}

async function enroll(ctx: ControllerContext, req: EnrollRequest, peer: string, alive: () => boolean): Promise<{ res: EnrollResponse; outcome: 'enrolled' | 'repeated' }> {
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
  // A host retries with the same key when an answer is lost (deadline, cut
  // link). Recognising the key returns the identity already recorded instead
  // of spending a second use on a second identity.
  const keyFingerprint = createHash('sha256').update(Buffer.from(csr.publicKey.rawData)).digest('hex');
  const prior = await ctx.agents.byKey(keyFingerprint);
  if (prior) return { res: await reissue(ctx, req, prior, csr.publicKey, peer), outcome: 'repeated' };
  const id = newAgentId();
  // Older agents report Node's architecture names (x64); labels and facts use the bundles' (amd64).
  const facts = { ...req.facts, arch: platformArch(req.facts.arch) };
  const issued = await ctx.ca.issue({ publicKey: csr.publicKey, commonName: id, role: 'agent', ttlMs: ctx.config.agentCertTtlMs });
  const now = Date.now();
  const labels: Labels = await ctx.db.tx(async (db) => {
    // Checked inside the transaction: a caller that gave up must not cost a use.
    if (!alive()) throw new FerryError(ErrorCode.Unavailable, 'the enrollment request expired before it was recorded; nothing was used', 'retry ferry-agent join');
    // The same key may have been recorded since the check above (an earlier attempt of this host committing late).
    if (await ctx.agents.byKey(keyFingerprint, db)) throw new FerryError(ErrorCode.Unavailable, 'an earlier attempt with this host key was just recorded', 'retry ferry-agent join');
    const token = await ctx.tokens.consume(db, req.token, now);
    const l: Labels = {
      ...token.labels,
      'ferry/id': id,
      'ferry/hostname': labelValue(req.facts!.hostname),
      'ferry/arch': labelValue(facts.arch),
    };
    await ctx.agents.insert(db, {
      id, hostname: req.facts!.hostname, labels: l, facts, agentVersion: req.agentVersion,
      tokenId: token.id, enrolledAt: now, certSerial: issued.serial, certNotAfter: issued.notAfter.getTime(), keyFingerprint,
    });
    return l;
  });
  await ctx.audit.record(`token:${req.token.split('.')[1] ?? '?'}`, 'agent.enroll', id, { hostname: req.facts.hostname, peer });
  ctx.log.info({ agent: id, hostname: req.facts.hostname, peer }, 'agent enrolled');
  return { outcome: 'enrolled', res: {
    agentId: id, certPem: issued.certPem, caPem: ctx.ca.certPem, labels: labelsToList(labels),
    operatorKeys: (await ctx.bundles.keys()).map((k) => k.publicPem), serverTimeMs: Date.now(),
    warnings: await duplicateHostnameWarnings(ctx, id, req.facts.hostname),
  } };
}

/** How long after its enrollment a host may repeat it (same key, same token) to get the answer it lost. */
export const ENROLL_REPEAT_WINDOW_MS = 15 * 60_000;

/**
 * A repeated enrollment: the same host key as an agent already recorded.
 * Answered with that agent's identity and a fresh certificate, at no token
 * use, only when it is the same enrollment retried: the same token (its
 * secret proves it), within the window, and the agent has never connected
 * (one that has, got its answer). The CSR's signature proves the caller
 * holds the key.
 */
async function reissue(ctx: ControllerContext, req: EnrollRequest, prior: AgentRecord, publicKey: x509.PublicKey, peer: string): Promise<EnrollResponse> {
  const token = await ctx.tokens.authenticate(ctx.db, req.token);
  if (prior.tokenId !== token.id) {
    throw new FerryError(ErrorCode.IdentityClaimed, `this host key is already enrolled as agent ${prior.id}, with another token`,
      'every host generates its own key; run `ferry-agent join --force` to make a new one');
  }
  if (prior.revokedAt !== null) {
    throw new FerryError(ErrorCode.IdentityClaimed, `this host key belongs to agent ${prior.id}, which was revoked`, 'run `ferry-agent join --force` with a new join string');
  }
  if (prior.lastSeenAt !== null || Date.now() - prior.enrolledAt > ENROLL_REPEAT_WINDOW_MS) {
    throw new FerryError(ErrorCode.AlreadyExists, `this host key is already enrolled as agent ${prior.id}`,
      'this host has its identity; to replace it, run `ferry-agent join --force` (and revoke the old one)');
  }
  const issued = await ctx.ca.issue({ publicKey, commonName: prior.id, role: 'agent', ttlMs: ctx.config.agentCertTtlMs });
  await ctx.agents.setCert(prior.id, issued.serial, issued.notAfter.getTime());
  await ctx.audit.record(`token:${token.id}`, 'agent.enroll.repeat', prior.id, { hostname: req.facts!.hostname, peer });
  ctx.log.info({ agent: prior.id, hostname: req.facts!.hostname, peer }, 'repeated enrollment answered with the recorded identity');
  return {
    agentId: prior.id, certPem: issued.certPem, caPem: ctx.ca.certPem, labels: labelsToList(prior.labels),
    operatorKeys: (await ctx.bundles.keys()).map((k) => k.publicPem), serverTimeMs: Date.now(),
    warnings: await duplicateHostnameWarnings(ctx, prior.id, req.facts!.hostname),
  };
}

/**
 * Cloned images often share a kernel host name; targeting by hostname then
 * hits several boxes. Enrollment goes ahead (the ids differ) but says so, on
 * both sides, and `ferry agents ls` marks the names.
 */
async function duplicateHostnameWarnings(ctx: ControllerContext, id: string, hostname: string): Promise<string[]> {
  const others = await ctx.agents.sameHostname(hostname, id);
  if (others.length === 0) return [];
  ctx.log.warn({ agent: id, hostname, others: others.map((o) => o.id) }, 'enrolled with a hostname another agent already has');
  return [`another enrolled host already has the hostname "${hostname}" (${others.map((o) => o.id).join(', ')}); `
    + 'give this one its own name with `ferry-agent join --hostname NAME`, or target hosts by id'];
}
