/**
 * When an agent's (or relay's) certificate is due for renewal. One rule for both, kept apart
 * from the session loop so the relay role can use it without importing the loop.
 */
import { X509Certificate } from 'node:crypto';

/** True when less than `fraction` of the certificate's lifetime remains at `now`: the one renewal rule. */
export function renewalDue(certPem: string, now: number, fraction = 1 / 3): boolean {
  const c = new X509Certificate(certPem);
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  return to - now < (to - from) * fraction;
}
