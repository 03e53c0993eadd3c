import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';

/**
 * Re-authentication of an enrolled agent whose certificate lapsed.
 *
 * The agent signs, with its enrolled key, a payload that binds the
 * controller's single-use challenge to the agent id and to the exact CSR it
 * sends. A signature over the nonce alone could be lifted onto another
 * request; binding the CSR's hash means the controller issues a certificate
 * only for the request the key holder meant. The domain prefix keeps this
 * signature from being valid for anything else the key ever signs.
 */
const DOMAIN = 'ferry-reauth-v1';

/** The exact bytes the agent signs and the controller verifies. */
export function reauthPayload(agentId: string, nonce: Uint8Array, csrPem: string): Buffer {
  const csrHash = createHash('sha256').update(csrPem, 'utf8').digest('hex');
  return Buffer.from(`${DOMAIN}\n${agentId}\n${Buffer.from(nonce).toString('base64')}\n${csrHash}\n`, 'utf8');
}

/** Signs the payload with the agent's PKCS#8 PEM private key (ECDSA P-256, SHA-256, DER signature). */
export function signReauth(keyPem: string, agentId: string, nonce: Uint8Array, csrPem: string): Buffer {
  return sign('sha256', reauthPayload(agentId, nonce, csrPem), createPrivateKey(keyPem));
}

/** True when `signature` is the holder of the SubjectPublicKeyInfo `spkiDer` signing this payload. */
export function verifyReauth(spkiDer: Uint8Array, agentId: string, nonce: Uint8Array, csrPem: string, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    return verify('sha256', reauthPayload(agentId, nonce, csrPem), key, signature);
  } catch {
    return false;
  }
}

/** sha256 hex of a SubjectPublicKeyInfo: how the controller records an agent's enrolled key. */
export function keyFingerprint(spkiDer: Uint8Array): string {
  return createHash('sha256').update(spkiDer).digest('hex');
}
