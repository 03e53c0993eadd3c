/**
 * Image reference normalisation and rewrite rules as containerd sees names: what `ctr images
 * import` stores for a docker-archive RepoTag, and what the image.import step's `rewrite`
 * rules match. Mirrors docker/distribution's rules: the first component is a registry only if
 * it has a `.` or `:` or is `localhost`; otherwise docker.io, with `library/` for one-component
 * names; no tag and no digest means `:latest`.
 */
import type { ImageRewrite } from '../../../../common/src/plan/steps/image-import.js';

function isDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost';
}

/** Splits `name[:tag][@digest]` into its name and the rest (":tag", "@digest" or both). */
function splitRef(ref: string): { name: string; suffix: string } {
  const at = ref.indexOf('@');
  const beforeDigest = at < 0 ? ref : ref.slice(0, at);
  const colon = beforeDigest.lastIndexOf(':');
  const cut = colon > beforeDigest.lastIndexOf('/') ? colon : (at < 0 ? ref.length : at);
  return { name: ref.slice(0, cut), suffix: ref.slice(cut) };
}

/** Normalises a name (no tag) the way containerd does: `nginx` → `docker.io/library/nginx`. */
export function normalizeName(name: string): string {
  const parts = name.split('/');
  let n = name;
  if (parts.length === 1 || !isDomain(parts[0]!)) n = `docker.io/${parts.length === 1 ? 'library/' : ''}${name}`;
  return n.replace(/^index\.docker\.io\//, 'docker.io/');
}

/** Normalises a full reference: `nginx:1.27` → `docker.io/library/nginx:1.27`; adds `:latest` when untagged. */
export function normalizeRef(ref: string): string {
  const { name, suffix } = splitRef(ref.trim());
  return normalizeName(name) + (suffix === '' ? ':latest' : suffix);
}

/** True when a ref names an image fully enough to look it up (not a bare OCI tag like "1.0"). */
export function isQualifiedRef(ref: string): boolean {
  return ref.includes('/') || ref.includes(':');
}

/** A rewrite prefix normalised (`kubeedge/` → `docker.io/kubeedge/`; `library/` is not added). */
function normalizePrefix(p: string): string {
  const first = p.split('/')[0]!;
  return isDomain(first) ? p.replace(/^index\.docker\.io\//, 'docker.io/') : `docker.io/${p}`;
}

/**
 * The ref `rules` map `ref` to (first matching rule wins; rules are not chained), or
 * undefined when none matches. Prefix rules (`from` ending in "/") replace the prefix;
 * repository rules match the repository (and tag, if `from` has one) and keep the tag unless
 * `to` sets one. Digests are kept.
 */
export function rewriteRef(ref: string, rules: readonly ImageRewrite[]): string | undefined {
  const full = normalizeRef(ref);
  const { name, suffix } = splitRef(full);
  for (const r of rules) {
    if (r.from.endsWith('/')) {
      const from = normalizePrefix(r.from);
      if (name.startsWith(from) && name.length > from.length) return normalizePrefix(r.to) + name.slice(from.length) + suffix;
      continue;
    }
    const f = splitRef(r.from);
    if (normalizeName(f.name) !== name) continue;
    if (f.suffix && f.suffix !== suffix.split('@')[0]) continue;
    const t = splitRef(r.to);
    const keep = t.suffix ? t.suffix + (suffix.includes('@') ? suffix.slice(suffix.indexOf('@')) : '') : suffix;
    return normalizeName(t.name) + keep;
  }
  return undefined;
}
