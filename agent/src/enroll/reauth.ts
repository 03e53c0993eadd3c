import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { EnrollmentClient } from '../../../common/src/gen/ferry/v1/enrollment.js';
import { clientChannelOptions } from '../../../common/src/grpc-options.js';
import { unaryCall } from '../../../common/src/grpc-call.js';
import { certIdentity, createCsr, keyPairFromPem, spkiPin } from '../../../common/src/pki.js';
import { signReauth } from '../../../common/src/reauth.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { controllerCreds } from '../grpc-creds.js';
import type { AgentState } from '../state/agent-state.js';

/**
 * Gets a new certificate for this host's enrolled key after the old one
 * lapsed: asks `address` for a single-use challenge, signs it with the key,
 * and sends a CSR for the same key. Runs over server-authenticated TLS that
 * trusts only the CA this host already holds, so the key's signature never
 * reaches an impostor. The new certificate is checked (same CA, same agent
 * id, same key) before it replaces the old one.
 */
export async function reauthenticate(state: AgentState, address: string, timeoutMs = 30_000): Promise<{ notAfter: string }> {
  const { identity, keyPem, caPem } = state.load();
  const agentId = identity.agentId;
  const client = new EnrollmentClient(address, controllerCreds(caPem), clientChannelOptions());
  try {
    const { nonce } = await unaryCall(client, client.challenge, { agentId }, timeoutMs);
    const keys = await keyPairFromPem(keyPem);
    const csrPem = await createCsr(keys, agentId);
    const signature = signReauth(keyPem, agentId, nonce, csrPem);
    const res = await unaryCall(client, client.reauthenticate, { agentId, csrPem, nonce, signature, agentVersion: FERRY_VERSION }, timeoutMs);
    const cert = new X509Certificate(res.certPem);
    const ca = new X509Certificate(caPem);
    const ourKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    if (!cert.verify(ca.publicKey) || certIdentity(cert).cn !== agentId
      || !cert.publicKey.export({ type: 'spki', format: 'der' }).equals(ourKey) || spkiPin(res.caPem) !== spkiPin(caPem)) {
      throw new FerryError(ErrorCode.Unauthenticated, `the certificate ${address} returned on re-authentication is not for ${agentId} and this host's key under the CA it holds`,
        'this is not the controller this host enrolled with; check the address, and tell the fleet operator');
    }
    state.saveCert(res.certPem);
    return { notAfter: new Date(cert.validTo).toISOString() };
  } finally {
    client.close();
  }
}

/** When this host's certificate lapses, for decisions (expired?) and for `ferry-agent status`. */
export function certLease(certPem: string, now = Date.now()): { notAfterMs: number; expired: boolean } {
  const notAfterMs = Date.parse(new X509Certificate(certPem).validTo);
  return { notAfterMs, expired: now >= notAfterMs };
}

/** The certificate lease in words for `ferry-agent status`: when it ends and what happens then. */
export function describeLease(certPem: string, now = Date.now()): { notAfter: string; expired: boolean; next: string } {
  const { notAfterMs, expired } = certLease(certPem, now);
  const notAfter = new Date(notAfterMs).toISOString();
  const next = expired
    ? 'the agent re-authenticates with its enrolled key on its next connection and gets a new certificate (unless an operator revoked it, or it was unseen for longer than the controller\'s re-authentication window)'
    : 'renewed over the session once a third of its life is left; if it lapses while the host is off, the agent re-authenticates with its key';
  return { notAfter, expired, next };
}
