/**
 * File helpers for steps that manage host files: reading what is there,
 * hashing, timestamped backups, and putting a file back as it was. Every
 * write goes through common/src/secure-fs.ts (the one atomic write).
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { lstat, rm, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Stats } from 'node:fs';
import { writeFileAtomicAsync } from '../../../../common/src/secure-fs.js';

/** Mode for system config directories a step creates: other programs must read them. */
export const SYSTEM_DIR_MODE = 0o755;

/** File content as text, or undefined when there is no file. */
export function readTextIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Puts a file back as it was: the old text, or no file (and no empty directory we made). */
export async function restoreText(path: string, old: string | undefined, mode = 0o644): Promise<void> {
  if (old !== undefined) {
    await writeFileAtomicAsync(path, old, { mode, dirMode: SYSTEM_DIR_MODE });
    return;
  }
  await rm(path, { force: true });
  // Only succeeds when empty (e.g. a drop-in directory we created); not empty or not ours: leave it.
  await rmdir(dirname(path)).catch(() => undefined);
}

/** stat(), or undefined when the path does not exist. */
export async function statIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** sha256 of bytes, hex. */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of a file's contents, hex, streamed (bundle files can be large). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}

/** `20261122T101500Z` for a date: sortable, and no characters that need quoting in a shell. */
export function stamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/**
 * Copies `path` to `<path>.ferry-bak-<stamp>` beside it with the same mode
 * and owner (config files can hold secrets). Never overwrites an existing
 * backup: a second backup in the same second gets a `-2` suffix.
 */
export async function makeBackup(path: string, now = new Date()): Promise<string> {
  const st = await lstat(path);
  const base = `${path}.ferry-bak-${stamp(now)}`;
  for (let n = 1; ; n++) {
    const dest = n === 1 ? base : `${base}-${n}`;
    try {
      await writeFileAtomicAsync(dest, { copyFrom: path }, { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, dirMode: false, noReplace: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && n < 100) continue;
      throw e;
    }
    return dest;
  }
}

/** `0644` style. */
export function fmtMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}
