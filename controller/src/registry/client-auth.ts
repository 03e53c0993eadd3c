/**
 * Who is pulling, from the TLS client certificate: identified by the same
 * function as gRPC calls and the console (services/peer-auth.ts
 * identifyCertificate); then the agent or operator it names must be on
 * record and not revoked — looked up on every request, so a revocation
 * holds from the next request on. The same decision answers requests a site
 * relay passes on (resolve-http.ts), with the certificate the relay's TLS
 * verified.
 */
import type { TLSSocket } from 'node:tls';
import { FerryError } from '../../../common/src/errors.js';
import { RegistryError } from '../../../common/src/registry/http-error.js';
import { verifiedPeerCert } from '../../../common/src/registry/listener.js';
import type { CertificateAuthority } from '../pki/ca.js';
import type { AgentStore } from '../store/agents.js';
import type { OperatorStore } from '../store/operators.js';
import { identifyCertificate } from '../services/peer-auth.js';

/** A verified client, or none (anonymous). */
export type Client = { kind: 'agent' | 'operator'; id: string } | { kind: 'anonymous' };

/** See module comment. */
export class ClientAuth {
  constructor(private readonly ca: CertificateAuthority, private readonly agents: AgentStore, private readonly operators: OperatorStore) {}

  /** The client on `socket`; throws 401 for a certificate that is not valid, 403 for a revoked or unknown holder. */
  async identify(socket: TLSSocket): Promise<Client> {
    return this.identifyCert(verifiedPeerCert(socket), `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`);
  }

  /** The client holding certificate `raw` (DER; undefined: none presented), checked against the CA again. */
  async identifyCert(raw: Buffer | undefined, address: string): Promise<Client> {
    if (!raw || raw.length === 0) return { kind: 'anonymous' };
    let who;
    try {
      who = identifyCertificate(raw, this.ca, address);
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
