/**
 * Checks of a verified manifest, shared by the controller (before it commits
 * a bundle) and the agent (before it writes a byte).
 *
 * A valid signature only proves who made a manifest, not that it is sane:
 * an operator key can sign a broken or hostile one. These checks decide
 * where bytes land, so the agent runs them even though the controller did on
 * upload: the agent trusts no one else to keep it inside its own directory.
 */
import { posix } from 'node:path';
import { ErrorCode, FerryError } from '../errors.js';
import { isSha256Hex } from './digest.js';
import type { BundleManifest } from './manifest.js';

/**
 * Largest chunk the agent accepts. The chunker cuts at 4 MiB; the limit sits
 * just under the 16 MiB receive limit of chunk calls, and bounds how much one
 * chunk can make the agent hold in memory.
 */
export const MAX_CHUNK_BYTES = 15 * 1024 * 1024;
/** Linux NAME_MAX / PATH_MAX: refuse early with a clear message instead of ENAMETOOLONG half way. */
const MAX_SEGMENT_BYTES = 255;
const MAX_PATH_BYTES = 4000;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/;
const HINT = 'the manifest is signed but malformed or hostile: rebuild it with `ferry bundle build` and push it again; do not edit manifests by hand';

/**
 * Throws BUNDLE_INVALID (naming the offending path) unless the name and
 * version are well-formed; every file path is relative, normalised POSIX,
 * free of `..`, NUL, control characters and backslashes, within Linux's
 * name and path limits, unique, and not a directory of another file; every
 * mode is permission bits only; every size, digest and chunk list is
 * consistent (one size per chunk digest, at most MAX_CHUNK_BYTES).
 * `consequence` ends each message (e.g. "nothing was written").
 */
export function checkManifest(m: BundleManifest, consequence: string): void {
  const label = typeof m.name === 'string' && typeof m.version === 'string' ? `${m.name}:${m.version}`.slice(0, 200) : '(unnamed)';
  const invalid = (what: string, hint = HINT) => new FerryError(ErrorCode.BundleInvalid, `bundle ${label}: ${what}; ${consequence}`, hint);
  if (typeof m.name !== 'string' || !NAME.test(m.name)) throw invalid('the name is invalid', 'names are lowercase letters, digits, . _ - (max 63)');
  if (typeof m.version !== 'string' || !VERSION.test(m.version)) throw invalid('the version is invalid', 'versions are letters, digits, . _ + - (max 63)');
  if (!Array.isArray(m.files)) throw invalid('the manifest has no file list');

  const files = new Set<string>();
  const dirs = new Set<string>();
  const chunkSizes = new Map<string, number>();
  for (const f of m.files) {
    const p: unknown = f?.path;
    checkPath(p, invalid);
    if (files.has(p)) throw invalid(`file path ${JSON.stringify(p)} appears twice`);
    if (dirs.has(p)) throw invalid(`file path ${JSON.stringify(p)} is also the directory of another file`);
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (files.has(d)) throw invalid(`file path ${JSON.stringify(p)} needs ${JSON.stringify(d)} to be a directory, but it is a file`);
      dirs.add(d);
    }
    files.add(p);

    const where = `file ${JSON.stringify(p)}`;
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o777) {
      throw invalid(`${where} has mode ${String(f.mode)}; only permission bits (0 to 0o777, no setuid/setgid/sticky) are allowed`);
    }
    if (!Number.isSafeInteger(f.size) || f.size < 0) throw invalid(`${where} has an invalid size ${String(f.size)}`);
    if (!isSha256Hex(f.sha256)) throw invalid(`${where} has an invalid sha256 ${JSON.stringify(f.sha256)}`);
    if (!Array.isArray(f.chunks)) throw invalid(`${where} has no chunk list`);
    let total = 0;
    for (const c of f.chunks) {
      if (!isSha256Hex(c?.digest)) throw invalid(`${where} lists an invalid chunk digest ${JSON.stringify(c?.digest)}`);
      if (!Number.isSafeInteger(c.size) || c.size <= 0 || c.size > MAX_CHUNK_BYTES) {
        throw invalid(`${where}: chunk ${c.digest} has size ${String(c.size)} (allowed 1 to ${MAX_CHUNK_BYTES})`);
      }
      const prev = chunkSizes.get(c.digest);
      if (prev !== undefined && prev !== c.size) throw invalid(`${where}: chunk ${c.digest} is listed as ${c.size} bytes here and ${prev} bytes elsewhere`);
      chunkSizes.set(c.digest, c.size);
      total += c.size;
    }
    if (total !== f.size) throw invalid(`${where} is ${f.size} bytes but its chunks add up to ${total}`);
  }
}

function checkPath(p: unknown, invalid: (what: string) => FerryError): asserts p is string {
  const shown = JSON.stringify(p);
  if (typeof p !== 'string' || p.length === 0) throw invalid(`a file has an empty or missing path (${shown})`);
  if (p.includes('\0')) throw invalid(`file path ${shown} contains a NUL byte`);
  if (p.includes('\\')) throw invalid(`file path ${shown} contains a backslash (paths are POSIX, '/'-separated)`);
  if (CONTROL.test(p)) throw invalid(`file path ${shown} contains a control character`);
  if (p.startsWith('/')) throw invalid(`file path ${shown} is absolute; bundle paths are relative to the bundle root`);
  const parts = p.split('/');
  if (parts.includes('..')) throw invalid(`file path ${shown} has a ".." component and could escape the bundle directory`);
  if (posix.normalize(p) !== p || parts.some((s) => s === '' || s === '.')) {
    throw invalid(`file path ${shown} is not normalised (empty or "." component, or trailing slash)`);
  }
  if (Buffer.byteLength(p) > MAX_PATH_BYTES || parts.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) {
    throw invalid(`file path ${shown.slice(0, 120)}… is longer than the filesystem allows`);
  }
}
