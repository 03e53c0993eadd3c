/**
 * Path hygiene for tar entries. Kept apart from the reader so the rules are easy to audit.
 *
 * We never extract image tars, but names and link targets still matter: later stages (bundle
 * assembly, `docker load` on the host) may, and a name that looks harmless to one tool but
 * resolves elsewhere in another is exactly how extraction exploits work. So anything that is
 * absolute or climbs with `..` is refused outright rather than cleaned up.
 */
import { TarLinkEscapeError, TarMalformedError, TarPathEscapeError } from './errors.js';

/** Both separators: a `..\\` component is an escape on the Windows hosts some tools run on. */
const SEP = /[\\/]+/;

function isAbsoluteLike(p: string): boolean {
  return p.startsWith('/') || p.startsWith('\\') || /^[A-Za-z]:/.test(p);
}

/**
 * Normalise an entry name: drop `.` components, leading `./` and trailing `/`. Throws
 * TarPathEscapeError for absolute names or any `..` component (even `a/../b`, which stays
 * inside but has no legitimate use in an image tar). The archive root itself becomes `.`.
 */
export function normalizeEntryName(raw: string): string {
  if (raw.includes('\0')) throw new TarMalformedError(`tar entry name contains NUL: ${JSON.stringify(raw)}`);
  if (isAbsoluteLike(raw)) throw new TarPathEscapeError(raw);
  const parts = raw.split(SEP).filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new TarPathEscapeError(raw);
  return parts.length === 0 ? '.' : parts.join('/');
}

/**
 * Resolve a link target to a normalised path inside the archive, or throw TarLinkEscapeError.
 * Symlink targets are relative to the link's directory; hardlink targets are relative to the
 * archive root. `..` is allowed as long as it never climbs above the root.
 */
export function resolveLinkTarget(entryName: string, target: string, kind: 'symlink' | 'hardlink'): string {
  if (target === '' || target.includes('\0')) throw new TarMalformedError(`tar link ${JSON.stringify(entryName)} has an empty or invalid target`);
  if (isAbsoluteLike(target)) throw new TarLinkEscapeError(entryName, target);
  const stack = kind === 'symlink' ? entryName.split('/').slice(0, -1).filter((p) => p !== '.') : [];
  for (const part of target.split(SEP)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) throw new TarLinkEscapeError(entryName, target);
      stack.pop();
    } else {
      stack.push(part);
    }
  }
  return stack.length === 0 ? '.' : stack.join('/');
}
