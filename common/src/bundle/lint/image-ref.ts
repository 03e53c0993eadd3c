/**
 * Container image references: parsing, normalisation and registry-rewrite rules.
 *
 * Normalisation follows docker/distribution's reference grammar, because that is what
 * containerd, kubelet and `docker pull` do with a short name:
 *   - the first path component is a registry host only if it contains `.` or `:` or is
 *     `localhost` (so `sealerio/lvscare` is on Docker Hub, `sea.hub:5000/sealerio/lvscare` is not);
 *   - otherwise the host is `docker.io`, and a single-component name gets `library/`
 *     (`nginx:1.25` → `docker.io/library/nginx:1.25`); `index.docker.io` is `docker.io`;
 *   - a reference with neither tag nor digest means `:latest`.
 *
 * Rewrite rules ({@link compileRewrite}) say "references under `from` are served as `to`".
 * Both sides are normalised the same way, so `from: sealerio/` and `from: docker.io/sealerio/`
 * are the same rule.
 */
import type { RewriteRule } from '../manifest.js';

/** A parsed reference; `domain` and `path` are already normalised. */
export interface ImageRef {
  domain: string;
  path: string;
  tag?: string;
  /** `sha256:<hex>` (or another algorithm), when pinned by digest. */
  digest?: string;
}

const DOMAIN_COMPONENT = /^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])$/;
const PORT = /^[0-9]+$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$/;

function isDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase();
}

/** A registry host as image names carry it: `name[.name]*[:port]` or `[v6]:port` (used for hosts.toml upstreams too). */
export function validDomain(d: string): boolean {
  if (/^\[[0-9A-Fa-f:.]+\](?::[0-9]+)?$/.test(d)) return true; // IPv6 literal
  const [host, port, ...rest] = d.split(':');
  if (rest.length > 0 || (port !== undefined && !PORT.test(port))) return false;
  return host!.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** Split `name` into normalised domain and path (without tag/digest); undefined if invalid. */
function splitName(name: string): { domain: string; path: string } | undefined {
  const slash = name.indexOf('/');
  let domain = 'docker.io';
  let path = name;
  if (slash > 0 && isDomain(name.slice(0, slash))) {
    domain = name.slice(0, slash);
    path = name.slice(slash + 1);
  }
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && path !== '' && !path.includes('/')) path = `library/${path}`;
  if (!validDomain(domain) || path === '' || !path.split('/').every((c) => PATH_COMPONENT.test(c))) return undefined;
  return { domain, path };
}

/**
 * Parse and normalise a reference (`nginx`, `nginx:1.25`, `quay.io/a/b@sha256:…`).
 * Returns undefined for anything that is not a valid reference — including text with shell
 * or template variables in it, which callers report as unresolvable rather than missing.
 */
export function parseImageRef(s: string): ImageRef | undefined {
  let rest = s.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  const name = splitName(rest);
  if (!name) return undefined;
  return { ...name, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** `domain/path[:tag][@digest]`. */
export function formatImageRef(r: ImageRef): string {
  return `${r.domain}/${r.path}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** The form used for comparisons: normalised, with `:latest` when neither tag nor digest is given. */
export function canonicalImageRef(r: ImageRef): ImageRef {
  return r.tag === undefined && r.digest === undefined ? { ...r, tag: 'latest' } : r;
}

/** A rewrite rule checked and normalised by {@link compileRewrite}. */
export type CompiledRewrite =
  | { kind: 'prefix'; from: string; to: string; rule: RewriteRule }
  | { kind: 'repository'; from: ImageRef; to: ImageRef; rule: RewriteRule };

/** Normalise `x/` (a namespace prefix): a registry alone (`quay.io/`) or registry + path components. */
function normalizePrefix(p: string): string | undefined {
  const parts = p.slice(0, -1).split('/');
  let domain = 'docker.io';
  let path = parts;
  if (isDomain(parts[0]!)) {
    domain = parts[0] === 'index.docker.io' ? 'docker.io' : parts[0]!;
    path = parts.slice(1);
  }
  // No `library/` here: `sealerio/` is the Docker Hub namespace docker.io/sealerio/.
  if (!validDomain(domain) || !path.every((c) => PATH_COMPONENT.test(c))) return undefined;
  return `${[domain, ...path].join('/')}/`;
}

/**
 * Check and normalise one rule. Two shapes:
 *   - `from` ends with `/`: a namespace or registry prefix (`docker.io/sealerio/`, `quay.io/`).
 *     It matches references that start with it, so a prefix always ends at a path boundary
 *     (`sealerio/` does not match `sealerio-x/…`); `to` must also end with `/` and replaces it.
 *   - otherwise `from` is one repository, optionally with a tag (`sealerio/lvscare`,
 *     `sealerio/lvscare:v1.1.3-beta.8`). It matches that repository (and tag, if given; an
 *     untagged reference counts as `:latest`). `to` is a repository, whose tag, if it has
 *     one, replaces the reference's tag; digests are always kept.
 * Returns a message saying what is wrong instead of throwing, so config validation can
 * report every bad rule at once.
 */
export function compileRewrite(rule: RewriteRule): CompiledRewrite | string {
  const { from, to } = rule;
  if (from.endsWith('/') !== to.endsWith('/')) {
    return `"from" and "to" must both end with "/" (a namespace prefix) or both name a repository`;
  }
  if (from.endsWith('/')) {
    const f = normalizePrefix(from);
    const t = normalizePrefix(to);
    if (!f) return `"from" ${JSON.stringify(from)} is not a registry or namespace prefix`;
    if (!t) return `"to" ${JSON.stringify(to)} is not a registry or namespace prefix`;
    return { kind: 'prefix', from: f, to: t, rule };
  }
  const f = parseImageRef(from);
  const t = parseImageRef(to);
  if (!f || f.digest) return `"from" ${JSON.stringify(from)} is not a repository (with an optional tag); end it with "/" for a prefix`;
  if (!t || t.digest) return `"to" ${JSON.stringify(to)} is not a repository (with an optional tag)`;
  return { kind: 'repository', from: f, to: t, rule };
}

/**
 * Apply the first matching rule to a canonical reference (see {@link canonicalImageRef}).
 * Rules are not chained: the result is what a host asks its registry for.
 */
export function rewriteImageRef(ref: ImageRef, rules: readonly CompiledRewrite[]): ImageRef {
  const c = canonicalImageRef(ref);
  const name = `${c.domain}/${c.path}`;
  for (const r of rules) {
    if (r.kind === 'prefix') {
      if (!`${name}/`.startsWith(r.from) || `${name}/` === r.from) continue;
      const n = splitName(r.to + name.slice(r.from.length));
      if (n) return { ...c, ...n };
      continue;
    }
    if (r.from.domain !== c.domain || r.from.path !== c.path) continue;
    if (r.from.tag !== undefined && r.from.tag !== c.tag) continue;
    return { ...c, domain: r.to.domain, path: r.to.path, ...(r.to.tag !== undefined ? { tag: r.to.tag } : {}) };
  }
  return c;
}

/** Registry hosts rules rewrite to: they are, by construction, registries inside the site. */
export function rewriteTargetHosts(rules: readonly CompiledRewrite[]): string[] {
  return rules.map((r) => (r.kind === 'prefix' ? r.to.split('/')[0]! : r.to.domain));
}
