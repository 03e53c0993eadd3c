/**
 * sha256 digest helpers shared by the chunker, the chunk store and the image-tar inspector.
 */
import { createHash } from 'node:crypto';
import { InvalidDigestError } from './errors.js';

const HEX64 = /^[0-9a-f]{64}$/;

/** True if `s` is a bare sha256 hex digest: exactly 64 lowercase hex characters. */
export function isSha256Hex(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s);
}

/**
 * Throws {@link InvalidDigestError} unless `s` is 64 lowercase hex characters.
 * Call this before a digest becomes part of a filesystem path: it is what keeps
 * `../../etc/passwd` and friends out.
 */
export function assertSha256Hex(s: string): string {
  if (!isSha256Hex(s)) throw new InvalidDigestError(String(s));
  return s;
}

/** sha256 of `bytes` as lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
