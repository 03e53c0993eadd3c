import * as x509 from '@peculiar/x509';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

/** A certificate request that passed every check, reduced to what the CA uses. */
export interface CheckedCsr {
  publicKey: x509.PublicKey;
  /** Identities the CSR names (CN and SANs); the CA never copies them, but callers check them for claims. */
  claimedNames: string[];
}

const MAX_CSR_PEM = 8 * 1024;

/**
 * Parses and checks a PKCS#10 request from an agent or operator. Refuses a
 * request whose signature does not verify (the sender does not hold the key),
 * that is not ECDSA P-256, or that asks to be a CA. Names in the request are
 * returned for the caller's identity-claim check; issued certificates carry
 * only names the controller chose.
 */
export async function checkCsr(pem: string): Promise<CheckedCsr> {
  const hint = 'generate a fresh key and request with `ferry-agent join`; do not hand-craft CSRs';
  if (pem.length > MAX_CSR_PEM) throw new FerryError(ErrorCode.CsrInvalid, `CSR is ${pem.length} bytes, over the ${MAX_CSR_PEM}-byte limit`, hint);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (err) {
    throw new FerryError(ErrorCode.CsrInvalid, `CSR does not parse: ${(err as Error).message}`, hint);
  }
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw new FerryError(ErrorCode.CsrInvalid, `CSR key is ${alg.name ?? '?'} ${alg.namedCurve ?? ''}; Ferry accepts ECDSA P-256 only`, hint);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new FerryError(ErrorCode.CsrInvalid, 'CSR signature does not verify: the request was not signed by the key it carries', hint);

  const claimedNames: string[] = [];
  for (const ext of csr.extensions) {
    if (ext instanceof x509.BasicConstraintsExtension && ext.ca) {
      throw new FerryError(ErrorCode.CsrInvalid, 'CSR asks for a CA certificate (basicConstraints CA:true); agents get leaf certificates only', hint);
    }
    if (ext instanceof x509.SubjectAlternativeNameExtension) {
      for (const n of ext.names.items) claimedNames.push(String(n.value));
    }
  }
  for (const attr of csr.subjectName.toJSON()) {
    for (const [type, values] of Object.entries(attr)) {
      if (type === 'CN') claimedNames.push(...values);
    }
  }
  return { publicKey: csr.publicKey, claimedNames };
}
