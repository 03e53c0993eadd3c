import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { ErrorCode, FerryError } from '../errors.js';
import { keyIdOf } from '../bundle/manifest.js';
import type { SignedPlan } from '../gen/ferry/v1/session.js';

/** Signs the exact YAML text of a plan with an operator's ed25519 key. */
export function signPlan(text: string, file: string, privatePem: string): SignedPlan {
  const key = createPrivateKey(privatePem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new FerryError(ErrorCode.InvalidArgument, `signing key is ${key.asymmetricKeyType}, not ed25519`, 'make one with `ferry key gen`');
  }
  return { plan: text, file, signature: sign(null, Buffer.from(text), key).toString('base64'), keyId: keyIdOf(createPublicKey(key)) };
}

/**
 * Verifies a signed plan against trusted operator keys and returns its text.
 * A tampered controller store cannot make agents run foreign steps.
 */
export function verifyPlan(signed: SignedPlan, trustedPems: readonly string[]): string {
  if (!signed.signature || !signed.keyId) {
    throw new FerryError(ErrorCode.SignatureInvalid, `plan ${signed.file} is not signed`, 'push plans with `ferry plan push FILE --key operator.key`');
  }
  const key = trustedPems.map((p) => createPublicKey(p)).find((k) => keyIdOf(k) === signed.keyId);
  if (!key) {
    throw new FerryError(ErrorCode.SignatureInvalid, `plan ${signed.file} is signed by ${signed.keyId}, which this host does not trust`,
      'sign with an operator key the fleet trusts; hosts trust the keys they were given at enrollment');
  }
  if (!verify(null, Buffer.from(signed.plan), key, Buffer.from(signed.signature, 'base64'))) {
    throw new FerryError(ErrorCode.SignatureInvalid, `the signature on plan ${signed.file} does not verify: the plan was altered`,
      'push the plan again from the original file');
  }
  return signed.plan;
}
