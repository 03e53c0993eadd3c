/**
 * Who is pulling, from the TLS client certificate: identified by the same
 * function as gRPC calls and the console (services/peer-auth.ts
 * identifyCertificate); then the agent or operator it names must be on
 * record and not revoked — looked up on every request, so a revocation
 * holds from the next request on. TLS accepts any certificate
 * (rejectUnauthorized: false) so that a refusal is a JSON 401/403 a client
 * can show, not a handshake failure.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { FerryError } from '../../../common/src/errors.js';
import { certIdentity } from '../../../common/src/pki.js';
import type { CertificateAuthority } from '../pki/ca.js';
import type { AgentStore } from '../store/agents.js';
import type { OperatorStore } from '../store/operators.js';
import { identifyCertificate } from '../services/peer-auth.js';
import { RegistryError } from './http-error.js';

/** A verified client, or none (anonymous). */
export type Client = { kind: 'agent' | 'operator'; id: string } | { kind: 'anonymous' };

/** See module comment. */
export class ClientAuth {
  constructor(private readonly ca: CertificateAuthority, private readonly agents: AgentStore, private readonly operators: OperatorStore) {}

  /** The client on `socket`; throws 401 for a certificate that is not valid, 403 for a revoked or unknown holder. */
  async identify(socket: TLSSocket): Promise<Client> {
    const peer = socket.getPeerCertificate(false);
    if (!peer || !peer.raw) return { kind: 'anonymous' };
    if (!socket.authorized) {
      // Unverified: what it claims is only for the message.
      const cert = new X509Certificate(peer.raw);
      const claimed = certIdentity(cert).cn || '(no name)';
      const why = String((socket.authorizationError as { code?: string } | null)?.code ?? socket.authorizationError ?? 'not verified');
      const detail = why === 'CERT_HAS_EXPIRED' ? `expired at ${new Date(cert.validTo).toISOString()}` : `not issued by this fleet's CA (${why})`;
      throw new RegistryError(401, 'UNAUTHORIZED', `client certificate of ${claimed} refused: ${detail}; present an agent or operator certificate of this fleet`);
    }
    let who;
    try {
      who = identifyCertificate(peer.raw, this.ca, `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`);
    } catch (err) {
      throw new RegistryError(401, 'UNAUTHORIZED', err instanceof FerryError ? err.message : 'client certificate could not be read');
    }
    if (who.role === 'agent') {
      const a = await this.agents.get(who.id);
      if (!a) throw new RegistryError(403, 'DENIED', `agent ${who.id} is not enrolled on this controller`);
      if (a.revokedAt !== null) throw new RegistryError(403, 'DENIED', `agent ${who.id} was revoked at ${new Date(a.revokedAt).toISOString()}`);
      return { kind: 'agent', id: who.id };
    }
    if (who.role === 'operator') {
      try {
        const op = await this.operators.authorize(who);
        return { kind: 'operator', id: op.name };
      } catch (err) {
        throw new RegistryError(403, 'DENIED', (err as Error).message);
      }
    }
    throw new RegistryError(403, 'DENIED', `a ${who.role || 'unknown'} certificate cannot pull; use an agent or operator certificate`);
  }
}
