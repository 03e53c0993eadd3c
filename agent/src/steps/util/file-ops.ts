/**
 * File primitives for steps that write host files: atomic replace (temp file
 * in the same directory, fsync, rename, fsync of the directory) with mode
 * and ownership set before the rename, hashing, and timestamped backups.
 * secure-fs's writeFileAtomic is for the agent's own secrets (fixed owner);
 * host files must keep or take a given owner, so this sets it on the temp file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { copyFile, chmod, chown, lstat, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Stats } from 'node:fs';

/** Mode bits and owner a written file gets. */
export interface Attrs { mode: number; uid: number; gid: number }

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

/**
 * Atomically replaces `path` with `data` (bytes, or the contents of a file
 * given as `{ copyFrom }`). A failure leaves the old file as it was and no
 * temp file behind.
 */
export async function writeAtomic(path: string, data: Buffer | string | { copyFrom: string }, attrs: Attrs): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.ferry-${randomBytes(6).toString('hex')}.tmp`);
  // 0600 until owner and mode are final, so nobody reads a half-set file.
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      if (typeof data === 'string' || Buffer.isBuffer(data)) await fh.writeFile(data);
      // writeFile writes every byte from the current position (write() may write fewer).
      else for await (const chunk of createReadStream(data.copyFrom)) await fh.writeFile(chunk as Buffer);
      await fh.chown(attrs.uid, attrs.gid); // before chmod: chown clears setuid/setgid bits
      await fh.chmod(attrs.mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  const dh = await open(dir, 'r');
  try { await dh.sync(); } finally { await dh.close(); }
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
      await copyFile(path, dest, constants.COPYFILE_EXCL);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && n < 100) continue;
      throw e;
    }
    await chown(dest, st.uid, st.gid);
    await chmod(dest, st.mode & 0o7777);
    return dest;
  }
}

/** `0644` style. */
export function fmtMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}
