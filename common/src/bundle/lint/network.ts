/**
 * Which URLs and hosts count as "the internet" for an air-gapped install.
 *
 * Internal, always: localhost and loopback, cluster-local names (`*.svc`, `*.cluster.local`),
 * single-label names (`cloudcore`, `registry` — service names and /etc/hosts entries; nothing
 * on the internet resolves without a dot), private and link-local addresses (RFC 1918,
 * fc00::/7, fe80::/10), the reserved private-use suffixes `.internal`, `.local`, `.home.arpa`.
 * Plus what the operator lists in `lint.internalHosts` and the registries rewrite rules point
 * to. Everything else is outside the site.
 *
 * Hosts built from variables (`https://${MASTER_IP}:6443`, `%{KUBERNETES_API}%`) are not
 * judged: install scripts address the cluster they are building that way, and flagging every
 * one would bury the real findings.
 */

/** An http(s)/ftp URL found in text; `index` is its offset in the text searched. */
export interface UrlHit {
  url: string;
  /** `host[:port]` as written (no user info). */
  host: string;
  index: number;
  /** True when the host is (partly) a shell/template variable. */
  variable: boolean;
}

const URL_RE = /\b(?:https?|ftp):\/\/[^\s"'`<>\\)\],;|]+/gi;
const PRIVATE_SUFFIXES = ['.localhost', '.svc', '.cluster.local', '.internal', '.local', '.home.arpa'];

/** Every URL in `text`. */
export function findUrls(text: string): UrlHit[] {
  const out: UrlHit[] = [];
  for (const m of text.matchAll(URL_RE)) {
    const url = m[0].replace(/[.:]+$/, ''); // sentence punctuation after a URL
    const authority = url.slice(url.indexOf('//') + 2).split(/[/?#]/)[0]!;
    const host = authority.slice(authority.lastIndexOf('@') + 1);
    out.push({ url, host, index: m.index, variable: /[$%{}]/.test(host) || host === '' });
  }
  return out;
}

function splitHostPort(hp: string): { host: string; port?: string } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(hp);
  if (v6) return { host: v6[1]!.toLowerCase(), ...(v6[2] ? { port: v6[2] } : {}) };
  const m = /^(.*?)(?::(\d+))?$/.exec(hp)!;
  return { host: m[1]!.toLowerCase().replace(/\.$/, ''), ...(m[2] ? { port: m[2] } : {}) };
}

function privateIPv4(h: string): boolean | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (!m) return undefined;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a === 127 || a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254);
}

function privateIPv6(h: string): boolean | undefined {
  if (!h.includes(':')) return undefined;
  return h === '::1' || /^f[cd][0-9a-f]{0,2}:/.test(h) || /^fe[89ab][0-9a-f]?:/.test(h);
}

/**
 * A predicate for "this `host[:port]` is inside the site". `patterns` are `host`, `host:port`,
 * or `*.suffix` (any subdomain, and the suffix itself).
 */
export function internalHostMatcher(patterns: readonly string[]): (hostPort: string) => boolean {
  const pats = patterns.map((p) => splitHostPort(p.toLowerCase()));
  return (hostPort) => {
    const { host, port } = splitHostPort(hostPort);
    if (host === 'localhost' || PRIVATE_SUFFIXES.some((s) => host.endsWith(s))) return true;
    const v4 = privateIPv4(host);
    if (v4 !== undefined) return v4 || pats.some((p) => p.host === host && (!p.port || p.port === port));
    const v6 = privateIPv6(host);
    if (v6 !== undefined) return v6 || pats.some((p) => p.host === host && (!p.port || p.port === port));
    if (!host.includes('.')) return true;
    return pats.some((p) => {
      if (p.port && p.port !== port) return false;
      if (p.host.startsWith('*.')) return host === p.host.slice(2) || host.endsWith(p.host.slice(1));
      return p.host === host;
    });
  };
}

/** Maps string offsets to 1-based line/column, for text we scan without a YAML parser. */
export class LineIndex {
  private readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) this.starts.push(i + 1);
  }

  /** 1-based line and column of `offset`. */
  pos(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - this.starts[lo]! + 1 };
  }
}
