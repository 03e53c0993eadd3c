/**
 * The one atomic file write: a temp file in the same directory (mode 0600
 * until owner and mode are final), fsync, rename over the target, fsync of
 * the directory. A reader or a reboot sees the old file or the new one, never
 * half of one; a failure leaves the old file and no temp file behind.
 *
 * Two entry points, one procedure: writeFileAtomic for small files written by
 * synchronous code (keys, identity, journals), writeFileAtomicAsync for host
 * files steps install, which can be gigabytes and must not block the agent's
 * event loop (heartbeats) while they are copied and flushed.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, createReadStream, fchmodSync, fchownSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { chmod, link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** How the written file ends up. */
export interface AtomicWriteOptions {
  /** Mode bits of the file (default 0600). */
  mode?: number;
  /** Owner; default the writing process. Set before the mode (chown clears setuid/setgid bits). */
  uid?: number;
  gid?: number;
  /** Mode for missing parent directories (default 0700); false: the parent must exist. */
  dirMode?: number | false;
  /** Fail with EEXIST instead of replacing an existing file (backups never overwrite each other). */
  noReplace?: boolean;
}

function options(o: number | AtomicWriteOptions | undefined): AtomicWriteOptions & { mode: number } {
  return typeof o === 'number' ? { mode: o } : { ...o, mode: o?.mode ?? 0o600 };
}

/** Directories from `first` (the outermost one mkdir created) down to `dir`. */
function created(first: string | undefined, dir: string): string[] {
  const out: string[] = [];
  if (first === undefined) return out;
  for (let d = dir; d.length >= first.length; d = dirname(d)) out.unshift(d);
  return out;
}

function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.ferry-${randomBytes(6).toString('hex')}.tmp`);
}

/** Atomically writes small `data` to `path` (synchronous). `opts` is the mode or the full options. */
export function writeFileAtomic(path: string, data: string | Buffer, opts: number | AtomicWriteOptions = 0o600): void {
  const o = options(opts);
  const dir = dirname(path);
  if (o.dirMode !== false) {
    const mode = o.dirMode ?? 0o700;
    // The umask must not decide who may read a directory we create.
    for (const d of created(mkdirSync(dir, { recursive: true, mode }), dir)) chmodSync(d, mode);
  }
  const tmp = tempPath(path);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      if (o.uid !== undefined || o.gid !== undefined) fchownSync(fd, o.uid ?? -1, o.gid ?? -1);
      fchmodSync(fd, o.mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (o.noReplace) { linkSync(tmp, path); unlinkSync(tmp); } else renameSync(tmp, path);
  } catch (err) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw err;
  }
  const dfd = openSync(dir, 'r');
  try { fsyncSync(dfd); } finally { closeSync(dfd); }
}

/** Atomically writes `data` (bytes, or a file's contents streamed from `copyFrom`) to `path`. */
export async function writeFileAtomicAsync(path: string, data: string | Buffer | { copyFrom: string }, opts: number | AtomicWriteOptions = 0o600): Promise<void> {
  await writeStreamAtomic(path, async (write) => {
    if (typeof data === 'string') await write(Buffer.from(data));
    else if (Buffer.isBuffer(data)) await write(data);
    else for await (const chunk of createReadStream(data.copyFrom)) await write(chunk as Buffer);
  }, opts);
}

/**
 * Atomically writes a file produced piece by piece (too big for memory, e.g.
 * a backup): `produce` writes through the handle of a temporary file in the
 * same directory, which is synced and renamed into place only once
 * `produce` resolves; on any error it is removed and `path` is untouched.
 */
export async function writeStreamAtomic(path: string, produce: (write: (b: Buffer) => Promise<void>) => Promise<void>, opts: number | AtomicWriteOptions = 0o600): Promise<void> {
  const o = options(opts);
  const dir = dirname(path);
  if (o.dirMode !== false) {
    const mode = o.dirMode ?? 0o700;
    for (const d of created(await mkdir(dir, { recursive: true, mode }), dir)) await chmod(d, mode);
  }
  const tmp = tempPath(path);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await produce(async (b) => { await fh.writeFile(b); });
      if (o.uid !== undefined || o.gid !== undefined) await fh.chown(o.uid ?? -1, o.gid ?? -1);
      await fh.chmod(o.mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (o.noReplace) { await link(tmp, path); await unlink(tmp); } else await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** Makes renames into `dir` durable: a new directory entry is on disk only once the directory is synced. */
export async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try { await dh.sync(); } finally { await dh.close(); }
}

/** Creates a directory for secrets, owner-only. */
export function ensurePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  chmodSync(path, 0o700);
}
