/**
 * Directory creation for the bundle cache (files themselves are built in
 * part-files.ts; small files go through the one atomic write in
 * common/src/secure-fs.ts), and the error for a file whose chunks do not
 * produce the manifest's sha256.
 */
import { chmod, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

const DIR_MODE = 0o755;

/** The assembled bytes do not match the manifest's size/sha256 for the file. Nothing was renamed into place. */
export class AssembledFileMismatchError extends FerryError {
  constructor(readonly path: string, readonly expected: string, readonly actual: string, size: number) {
    super(ErrorCode.BundleInvalid, `file ${JSON.stringify(path)} assembled from its chunks is ${size} bytes with sha256 ${actual}, but the manifest says ${expected}`,
      'the manifest\'s chunk list does not produce the file it describes: rebuild the bundle with `ferry bundle build` and push it again');
  }
}

/** mkdir -p with mode 0755 on exactly the directories created (mkdir's mode is filtered by umask). */
export async function mkdirExact(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  for (let d = dir; d.length >= first.length; d = dirname(d)) await chmod(d, DIR_MODE);
}
