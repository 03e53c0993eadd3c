import { ErrorCode, FerryError } from '../errors.js';
import { isSha256Hex } from './digest.js';
import type { BundleManifest } from './manifest.js';

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/;

function bad(what: string, hint = 'rebuild the bundle with `ferry bundle build`; do not edit manifests by hand'): FerryError {
  return new FerryError(ErrorCode.BundleInvalid, what, hint);
}

/**
 * Checks everything in a manifest that decides where bytes land: every path
 * is relative, normalised POSIX with no `..`, no two files collide, no file
 * sits where another needs a directory, modes are permission bits only, and
 * chunk lists add up. Run by the controller before committing and by agents
 * before writing anything, so a hostile manifest cannot reach outside the
 * bundle's directory.
 */
export function checkManifestPaths(m: BundleManifest): void {
  if (!NAME.test(m.name)) throw bad(`bundle name "${m.name}" is invalid`, 'names are lowercase letters, digits, . _ - (max 63)');
  if (!VERSION.test(m.version)) throw bad(`bundle version "${m.version}" is invalid`, 'versions are letters, digits, . _ + - (max 63)');
  const seen = new Set<string>();
  const dirs = new Set<string>();
  for (const f of m.files) {
    const p = f.path;
    if (typeof p !== 'string' || p.length === 0 || p.length > 4096) throw bad(`file path "${String(p)}" is empty or too long`);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f\\]/.test(p)) throw bad(`file path ${JSON.stringify(p)} contains a control character or backslash`);
    if (p.startsWith('/')) throw bad(`file path "${p}" is absolute`);
    const parts = p.split('/');
    if (parts.some((s) => s === '' || s === '.' || s === '..')) throw bad(`file path "${p}" is not a normalised relative path (empty, . or .. component)`);
    if (seen.has(p)) throw bad(`file path "${p}" appears twice`);
    if (dirs.has(p)) throw bad(`file path "${p}" is also a directory of another file`);
    seen.add(p);
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (seen.has(d)) throw bad(`file path "${p}" needs "${d}" to be a directory, but it is a file`);
      dirs.add(d);
    }
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o777) throw bad(`file "${p}" has mode ${f.mode}; only permission bits (0-0777) are allowed`);
    if (!isSha256Hex(f.sha256)) throw bad(`file "${p}" has an invalid sha256`);
    let total = 0;
    for (const c of f.chunks) {
      if (!isSha256Hex(c.digest) || !Number.isInteger(c.size) || c.size <= 0) throw bad(`file "${p}" has an invalid chunk entry`);
      total += c.size;
    }
    if (total !== f.size) throw bad(`file "${p}" is ${f.size} bytes but its chunks add up to ${total}`);
  }
}
