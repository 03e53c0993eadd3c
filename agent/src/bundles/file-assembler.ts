/**
 * Small atomic-write helpers for the bundle cache (files themselves are
 * built in part-files.ts), and the error for a file whose chunks do not
 * produce the manifest's sha256.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

/** Temp files start with this, so "nothing half-written left" is easy to check. */
export const TEMP_PREFIX = '.ferry-part-';
const DIR_MODE = 0o755;

/** The assembled bytes do not match the manifest's size/sha256 for the file. Nothing was renamed into place. */
export class AssembledFileMismatchError extends FerryError {
  constructor(readonly path: string, readonly expected: string, readonly actual: string, size: number) {
    super(ErrorCode.BundleInvalid, `file ${JSON.stringify(path)} assembled from its chunks is ${size} bytes with sha256 ${actual}, but the manifest says ${expected}`,
      'the manifest\'s chunk list does not produce the file it describes: rebuild the bundle with `ferry bundle build` and push it again');
  }
}

/** Write `data` to `path` atomically (temp, fsync, rename, fsync dir); the temp file is removed on failure. */
export async function writeFileAtomic(path: string, data: string, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fsyncDir(dir);
}

/** fsync a directory so the renames into it survive a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir -p with mode 0755 on exactly the directories created (mkdir's mode is filtered by umask). */
export async function mkdirExact(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  for (let d = dir; d.length >= first.length; d = dirname(d)) await chmod(d, DIR_MODE);
}
