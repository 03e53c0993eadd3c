import { ErrorCode, FerryError } from './errors.js';
import { parsePin } from './pki.js';

/** What a field tech pastes: where the controller is, the token, and the CA pin. */
export interface JoinInfo {
  addresses: string[];
  token: string;
  caPin: string;
}

const PREFIX = 'ferry://';

/**
 * Encodes a join string: `ferry://host:port[,host:port]/?token=...&ca=sha256:...`.
 * One line, no spaces, safe to paste into a serial console.
 */
export function formatJoinString(info: JoinInfo): string {
  // Tokens and pins use only URL-safe characters, so no escaping is needed.
  return `${PREFIX}${info.addresses.join(',')}/?token=${info.token}&ca=${info.caPin}`;
}

/** Decodes a join string, naming the part that is wrong. */
export function parseJoinString(s: string): JoinInfo {
  const text = s.trim();
  const hint = 'paste the whole line that `ferry token create` printed, starting with ferry://';
  if (!text.startsWith(PREFIX)) {
    throw new FerryError(ErrorCode.TokenMalformed, 'join string does not start with ferry://', hint);
  }
  const rest = text.slice(PREFIX.length);
  const slash = rest.indexOf('/?');
  if (slash < 0) throw new FerryError(ErrorCode.TokenMalformed, 'join string has no token part', hint);
  const addresses = rest.slice(0, slash).split(',').filter(Boolean);
  if (addresses.length === 0) {
    throw new FerryError(ErrorCode.TokenMalformed, 'join string names no controller address', hint);
  }
  for (const a of addresses) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(a)) {
      throw new FerryError(ErrorCode.TokenMalformed, `controller address "${a}" is not host:port`, hint);
    }
  }
  const q = new URLSearchParams(rest.slice(slash + 2));
  const token = q.get('token');
  const ca = q.get('ca');
  if (!token) throw new FerryError(ErrorCode.TokenMalformed, 'join string has no token', hint);
  if (!ca) throw new FerryError(ErrorCode.TokenMalformed, 'join string has no CA pin (ca=sha256:...)', hint);
  return { addresses, token, caPin: parsePin(ca) };
}
