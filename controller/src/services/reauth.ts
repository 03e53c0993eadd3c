import type { ChallengeRequest, ChallengeResponse, ReauthRequest, ReauthResponse } from '../../../common/src/gen/ferry/v1/enrollment.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import { keyFingerprint, verifyReauth } from '../../../common/src/reauth.js';
import type { CertificateAuthority } from '../pki/ca.js';
import { checkCsr } from '../pki/csr.js';
import type { AgentStore } from '../store/agents.js';
import type { AuditLog } from '../store/audit.js';
import type { ReauthChallenges } from '../store/reauth-challenges.js';

/** What re-authentication uses, and nothing else. */
export interface ReauthDeps {
  agents: AgentStore;
  challenges: ReauthChallenges;
  ca: Pick<CertificateAuthority, 'issue' | 'certPem'>;
  audit: AuditLog;
  log: Logger;
  agentCertTtlMs: number;
  /** An agent unseen for longer than this must be allowed again by an operator. */
  reauthWindowMs: number;
  now: () => number;
}

const AGENT_ID = /^ag-[0-9a-f]{12}$/;

const DAY = 86_400_000;

/**
 * Challenge and Reauthenticate: an enrolled agent whose certificate lapsed
 * proves possession of its enrolled key and gets a new certificate. The key
 * is the identity; the certificate is a lease. Every refusal is logged with
 * the agent id it claimed.
 */
export class ReauthService {
  constructor(private readonly d: ReauthDeps) {}

  async challenge(req: ChallengeRequest): Promise<ChallengeResponse> {
    if (!AGENT_ID.test(req.agentId)) {
      throw new FerryError(ErrorCode.InvalidArgument, `"${req.agentId}" is not an agent id`, 'the agent sends the id from its identity.json');
    }
    // Issued for any well-formed id: whether an agent exists is said only to the holder of its key.
    return this.d.challenges.issue(req.agentId, this.d.now());
  }

  /** Issues a certificate for the enrolled key, or refuses; every refusal is logged with the agent id claimed. */
  async reauthenticate(req: ReauthRequest, peer: string): Promise<ReauthResponse> {
    try {
      return await this.verifyAndIssue(req, peer);
    } catch (err) {
      const fe = err as FerryError;
      this.d.log.warn({ agent: req.agentId, peer, code: fe.code, err: fe.message }, 're-authentication refused');
      throw err;
    }
  }

  private async verifyAndIssue(req: ReauthRequest, peer: string): Promise<ReauthResponse> {
    const id = req.agentId;
    const now = this.d.now();
    const forged = (why: string) => new FerryError(ErrorCode.Unauthenticated, `re-authentication of ${id} refused: ${why}`,
      'only the host that enrolled as this agent, holding its key, can re-authenticate; otherwise enroll with `ferry-agent join --force`');
    if (!AGENT_ID.test(id)) throw new FerryError(ErrorCode.InvalidArgument, `"${id}" is not an agent id`);
    // Single-use first: a replayed or foreign challenge costs nothing and says nothing.
    if (!(await this.d.challenges.consume(id, req.nonce, now))) {
      throw forged('the challenge is unknown, expired, already used, or was issued for another agent');
    }
    const csr = await checkCsr(req.csrPem);
    for (const name of csr.claimedNames) {
      const m = /^(?:urn:ferry:agent:)?(ag-[0-9a-f]{12})$/.exec(name);
      if (m && m[1] !== id) throw forged(`the CSR names agent ${m[1]}`);
    }
    const agent = await this.d.agents.get(id);
    if (!agent) {
      throw new FerryError(ErrorCode.NotEnrolled, `agent ${id} is not enrolled at this controller (it was removed, or enrolled elsewhere)`,
        'enroll this host again with `ferry-agent join --force <join-string>`');
    }
    const spki = Buffer.from(csr.publicKey.rawData);
    if (agent.keyFingerprint === null || keyFingerprint(spki) !== agent.keyFingerprint) {
      throw forged('the CSR is not for the key this agent enrolled with');
    }
    if (!verifyReauth(spki, id, req.nonce, req.csrPem, req.signature)) {
      throw forged('the challenge signature does not verify with the enrolled key');
    }
    if (agent.revokedAt !== null) {
      throw new FerryError(ErrorCode.AgentRevoked, `agent ${id} was revoked by an operator at ${new Date(agent.revokedAt).toISOString()}`,
        'ask the fleet operator; a revoked host must be enrolled again with a new token');
    }
    const lastContact = Math.max(agent.lastSeenAt ?? agent.enrolledAt, agent.reauthAllowedAt ?? 0);
    if (now - lastContact > this.d.reauthWindowMs) {
      const days = Math.floor((now - lastContact) / DAY);
      throw new FerryError(ErrorCode.ReauthWindowPassed,
        `agent ${id} was last seen ${days} days ago (${new Date(lastContact).toISOString()}), longer than the re-authentication window of ${Math.round(this.d.reauthWindowMs / DAY)} days`,
        `an operator who trusts this host again runs \`ferry agents allow-reauth ${id}\`; the agent keeps trying and comes back by itself`);
    }
    const issued = await this.d.ca.issue({ publicKey: csr.publicKey, commonName: id, role: 'agent', ttlMs: this.d.agentCertTtlMs });
    await this.d.agents.setCert(id, issued.serial, issued.notAfter.getTime());
    await this.d.audit.record(`agent:${id}`, 'agent.reauthenticate', id, { peer, serial: issued.serial, agentVersion: req.agentVersion }, now);
    this.d.log.info({ agent: id, peer, notAfter: issued.notAfter.toISOString() }, 'agent re-authenticated with its enrolled key; new certificate issued');
    return { certPem: issued.certPem, caPem: this.d.ca.certPem, serverTimeMs: now };
  }
}
