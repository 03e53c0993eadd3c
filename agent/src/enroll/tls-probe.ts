import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, connect, type DetailedPeerCertificate } from 'node:tls';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { spkiPin, toPem } from '../../../common/src/pki.js';

const PROBE_TIMEOUT_MS = 10_000;

/** host and port of "host:port" or "[v6]:port". */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!m) throw new FerryError(ErrorCode.InvalidArgument, `"${address}" is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

/** Turns a socket error into what a field tech needs to hear. */
export function connectError(address: string, err: NodeJS.ErrnoException): FerryError {
  const code = err.code ?? '';
  const fw = 'check the address and port in the join string, and any firewall between this host and the controller';
  switch (code) {
    case 'ECONNREFUSED':
      return new FerryError(ErrorCode.Unreachable, `nothing is listening on ${address} (connection refused)`,
        `is the controller running, and on this port? ${fw}`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new FerryError(ErrorCode.Unreachable, `cannot resolve the controller's name in ${address}`,
        'check DNS or /etc/hosts on this host, or use the controller\'s IP address');
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new FerryError(ErrorCode.Unreachable, `cannot reach ${address} (${code})`, `no route or packets dropped; ${fw}`);
    case 'ECONNRESET':
    case 'EPROTO':
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return new FerryError(ErrorCode.TlsFailed, `${address} does not speak TLS as a Ferry controller (${err.message})`,
        'this is probably the wrong port: the controller\'s agent port is the one in the join string (default 7443)');
    default:
      return new FerryError(ErrorCode.Unreachable, `cannot connect to ${address}: ${err.message}`, fw);
  }
}

/** The certificate chain the server presented, leaf first. */
function chainOf(peer: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  for (let c: DetailedPeerCertificate | undefined = peer; c?.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
  }
  return out;
}

function clockCheck(address: string, cert: X509Certificate, now: number): void {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (now < from) {
    throw new FerryError(ErrorCode.ClockSkew,
      `the controller's certificate at ${address} is valid only from ${new Date(from).toISOString()}, but this host's clock says ${new Date(now).toISOString()}`,
      'this host\'s clock (or the controller\'s) is wrong: set the time (e.g. `timedatectl set-ntp true` or `date -s`) and try again');
  }
  if (now > to) {
    throw new FerryError(ErrorCode.ClockSkew,
      `the controller's certificate at ${address} expired at ${new Date(to).toISOString()} (this host's clock says ${new Date(now).toISOString()})`,
      'if this host\'s clock is right, the controller must renew its certificate; otherwise fix this host\'s clock');
  }
}

/**
 * Opens a TLS connection without trusting anyone yet and checks what the
 * server presents: a CA in its chain whose key matches `pin` (else the
 * connection may be intercepted), the name we dialled, and the validity
 * period against our clock. Returns the CA's PEM, the only trust root used
 * afterwards. Nothing secret is sent.
 */
export function probeController(address: string, opts: { pin?: string; caPem?: string; now?: number } = {}): Promise<{ caPem: string }> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host, port, servername: isIP(host) ? undefined : host, rejectUnauthorized: false, ALPNProtocols: ['h2'],
      timeout: PROBE_TIMEOUT_MS,
    });
    const done = (err: FerryError | null, caPem?: string) => {
      socket.destroy();
      if (err) reject(err);
      else resolve({ caPem: caPem! });
    };
    socket.on('timeout', () => done(connectError(address, Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }))));
    socket.on('error', (err) => done(connectError(address, err)));
    socket.on('secureConnect', () => {
      try {
        const chain = chainOf(socket.getPeerCertificate(true));
        const leaf = chain[0];
        if (!leaf) throw new FerryError(ErrorCode.TlsFailed, `${address} presented no certificate`);
        const now = opts.now ?? Date.now();
        let ca: X509Certificate | undefined;
        if (opts.pin) {
          ca = chain.find((c) => c.ca && spkiPin(c.raw) === opts.pin);
          if (!ca) {
            const offered = chain.filter((c) => c.ca).map((c) => spkiPin(c.raw));
            throw new FerryError(ErrorCode.CaPinMismatch,
              `the controller at ${address} presented a CA (${offered.join(', ') || 'none'}) that does not match the pin ${opts.pin}; the connection may be intercepted, so the token was NOT sent`,
              'get the correct pin from your fleet operator (printed by `ferry controller start` and in every join string); do not enroll until they match');
          }
        } else if (opts.caPem) {
          ca = new X509Certificate(opts.caPem);
        }
        if (ca && !leaf.checkIssued(ca) && leaf.fingerprint256 !== ca.fingerprint256) {
          throw new FerryError(ErrorCode.TlsFailed, `the server certificate at ${address} was not issued by the controller's CA`,
            'the address may point at another service or another controller');
        }
        clockCheck(address, leaf, now);
        const nameErr = checkServerIdentity(host, { subject: {}, subjectaltname: leaf.subjectAltName ?? '' } as never);
        if (nameErr) {
          throw new FerryError(ErrorCode.TlsNameMismatch,
            `the controller's certificate is for ${leaf.subjectAltName ?? 'no names'}, not for "${host}"`,
            `use one of those names in the address, or restart the controller with --san ${host}`);
        }
        done(null, ca ? toPem(ca.raw, 'CERTIFICATE') : '');
      } catch (err) {
        done(err instanceof FerryError ? err : new FerryError(ErrorCode.TlsFailed, String(err)));
      }
    });
  });
}
