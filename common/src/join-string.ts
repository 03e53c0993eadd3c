import { ErrorCode, FerryError } from './errors.js';
import { parsePin } from './pki.js';

/** What a field tech pastes: where the controller is, the token, and the CA pin. */
export interface JoinInfo {
  addresses: string[];
  token: string;
  caPin: string;
}

/**
 * The current form: `ferry1/<addr>[,<addr>]/<token>/sha256:<hex>`.
 *
 * Every character is one that sh, bash and zsh pass through unquoted
 * (`[A-Za-z0-9._:,/%+=@-]`): no `&`, `?`, `*`, `[`, spaces or quotes, so a
 * field tech can paste it bare after `ferry-agent join`. `/` separates the
 * fields because addresses carry `:`; an IPv6 address, which needs brackets
 * around it in host:port, has them percent-encoded (`%5B::1%5D:7443`), since
 * a bare `[` is a glob in every shell and an error in zsh.
 */
const PREFIX = 'ferry1/';
/** The first form, `ferry://a:p[,a:p]/?token=...&ca=...`: still parsed so strings handed out before keep working. */
const LEGACY_PREFIX = 'ferry://';

/** Characters a join string may hold unquoted. */
export const SHELL_SAFE = /^[A-Za-z0-9._:,/%+=@-]+$/;

/** Percent-encodes whatever is outside the shell-safe set (brackets of IPv6 addresses). */
function encodePart(s: string): string {
  return s.replace(/[^A-Za-z0-9._:,+=@-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Encodes a join string in the current shell-safe form. */
export function formatJoinString(info: JoinInfo): string {
  return `${PREFIX}${info.addresses.map(encodePart).join(',')}/${encodePart(info.token)}/${info.caPin}`;
}

const HINT = 'paste the whole line that `ferry token create` printed (ferry-agent join ferry1/...)';

function checkAddresses(addresses: string[]): string[] {
  if (addresses.length === 0) {
    throw new FerryError(ErrorCode.TokenMalformed, 'join string names no controller address', HINT);
  }
  for (const a of addresses) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(a)) {
      throw new FerryError(ErrorCode.TokenMalformed, `controller address "${a}" is not host:port`, HINT);
    }
  }
  return addresses;
}

function decodePart(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new FerryError(ErrorCode.TokenMalformed, `join string ${what} "${s}" has a broken %-escape`, HINT);
  }
}

function parseCurrent(rest: string): JoinInfo {
  const parts = rest.split('/');
  if (parts.length !== 3) {
    throw new FerryError(ErrorCode.TokenMalformed,
      `join string has ${parts.length} part(s) after ferry1/, expected 3 (addresses/token/pin)`, HINT);
  }
  const [addrs, token, pin] = parts as [string, string, string];
  const addresses = checkAddresses(addrs.split(',').filter(Boolean).map((a) => decodePart(a, 'address')));
  if (!token) throw new FerryError(ErrorCode.TokenMalformed, 'join string has no token', HINT);
  if (!pin) throw new FerryError(ErrorCode.TokenMalformed, 'join string has no CA pin (sha256:...)', HINT);
  return { addresses, token: decodePart(token, 'token'), caPin: parsePin(pin) };
}

function parseLegacy(rest: string): JoinInfo {
  const slash = rest.indexOf('/?');
  if (slash < 0) throw new FerryError(ErrorCode.TokenMalformed, 'join string has no token part', HINT);
  const addresses = checkAddresses(rest.slice(0, slash).split(',').filter(Boolean));
  const q = new URLSearchParams(rest.slice(slash + 2));
  const token = q.get('token');
  const ca = q.get('ca');
  if (!token) throw new FerryError(ErrorCode.TokenMalformed, 'join string has no token', HINT);
  if (!ca) throw new FerryError(ErrorCode.TokenMalformed, 'join string has no CA pin (ca=sha256:...)', HINT);
  return { addresses, token, caPin: parsePin(ca) };
}

/** Decodes a join string of either form, naming the part that is wrong. */
export function parseJoinString(s: string): JoinInfo {
  const text = s.trim();
  if (text.startsWith(PREFIX)) return parseCurrent(text.slice(PREFIX.length));
  if (text.startsWith(LEGACY_PREFIX)) return parseLegacy(text.slice(LEGACY_PREFIX.length));
  throw new FerryError(ErrorCode.TokenMalformed, 'join string does not start with ferry1/ (or the older ferry://)', HINT);
}
