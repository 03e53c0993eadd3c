/**
 * Request names for the registry: what a path may contain, and how a name
 * in a request is matched to a published repository (docs/registry.md,
 * "Names and ns"). Stored repositories are full names, registry host plus
 * path (`docker.io/library/nginx`, `sea.hub:5000/sealerio/lvscare`), so
 * images of the same path from different registries live side by side.
 */
import { RegistryError } from './http-error.js';

/** The distribution spec's repository name grammar (path components only). */
const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?$/;

/** Checks a repository path from a URL; NAME_INVALID names it. */
export function checkName(name: string): void {
  if (name.length > 255 || !NAME.test(name)) {
    throw new RegistryError(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}: lowercase path components of letters, digits and . _ -, separated by /`);
  }
}

/** Whether `ref` is a digest reference (else a tag); throws for neither. */
export function classifyReference(ref: string): 'digest' | 'tag' {
  if (ref.includes(':')) {
    if (!DIGEST.test(ref)) throw new RegistryError(400, 'DIGEST_INVALID', `invalid digest ${JSON.stringify(ref.slice(0, 200))}: Ferry serves sha256:<64 lowercase hex>`);
    return 'digest';
  }
  if (!TAG.test(ref)) throw new RegistryError(400, 'TAG_INVALID', `invalid tag ${JSON.stringify(ref.slice(0, 200))}`);
  return 'tag';
}

/** Checks a blob digest from a URL. */
export function checkDigest(d: string): void {
  if (!DIGEST.test(d)) throw new RegistryError(400, 'DIGEST_INVALID', `invalid digest ${JSON.stringify(d.slice(0, 200))}: Ferry serves sha256:<64 lowercase hex>`);
}

/** A registry host as the store spells it: Docker Hub's aliases are `docker.io`. */
export function normalizeHost(h: string): string {
  const lower = h.toLowerCase();
  if (lower === 'index.docker.io' || lower === 'registry-1.docker.io' || lower === 'registry.hub.docker.com') return 'docker.io';
  return lower;
}

/** Whether `h` can be a registry host at all (a `ns` value or Host header). */
export function isHost(h: string): boolean {
  return h.length <= 255 && HOST.test(h);
}

/** What {@link resolveRepository} needs from the store. */
export interface RepositoryLookup {
  /** Whether any repository is published under this registry host. */
  hasHost(host: string): Promise<boolean>;
  /** Whether this full name is published. */
  exists(repository: string): Promise<boolean>;
  /** Published full names whose path (after the host) is `path`. */
  byPath(path: string): Promise<string[]>;
}

/**
 * The published repository a request means, in the documented order: `ns`,
 * then the Host header, then a host as the path's first component, then
 * docker.io, then the one host that has the path. Undefined when nothing
 * matches; NAME_UNKNOWN listing the hosts when the path is ambiguous.
 */
export async function resolveRepository(path: string, ns: string | undefined, hostHeader: string | undefined, lookup: RepositoryLookup): Promise<string | undefined> {
  if (ns !== undefined) {
    if (!isHost(ns)) throw new RegistryError(400, 'NAME_INVALID', `invalid ns ${JSON.stringify(ns.slice(0, 200))}: a registry host such as docker.io`);
    return `${normalizeHost(ns)}/${path}`;
  }
  if (hostHeader && isHost(hostHeader)) {
    const h = normalizeHost(hostHeader);
    if (await lookup.hasHost(h)) return `${h}/${path}`;
  }
  const slash = path.indexOf('/');
  if (slash > 0 && path.slice(0, slash).includes('.') && (await lookup.exists(path))) return path;
  if (await lookup.exists(`docker.io/${path}`)) return `docker.io/${path}`;
  const all = await lookup.byPath(path);
  if (all.length === 1) return all[0];
  if (all.length > 1) {
    throw new RegistryError(404, 'NAME_UNKNOWN', `${path} is published under several registries (${all.join(', ')}); say which with ?ns=<registry host>`);
  }
  return undefined;
}
