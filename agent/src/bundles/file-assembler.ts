/**
 * Builds one bundle file from its chunks, atomically: a temp file in the
 * target's directory, chunks written in order, fsync, whole-file size and
 * sha256 checked, mode set, then rename. A reader (or a crash) never sees a
 * partial file under a manifest path.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { BundleFile } from '../../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

/** Temp files start with this; {@link removeTempFiles} only deletes such names. */
export const TEMP_PREFIX = '.ferry-part-';
const DIR_MODE = 0o755;

/** Supplies a chunk's bytes (exactly `size` of them) for assembly. */
export type ReadChunk = (digest: string, size: number) => Promise<Buffer>;

/** The assembled bytes do not match the manifest's size/sha256 for the file. Nothing was renamed into place. */
export class AssembledFileMismatchError extends FerryError {
  constructor(readonly path: string, readonly expected: string, readonly actual: string, size: number) {
    super(ErrorCode.BundleInvalid, `file ${JSON.stringify(path)} assembled from its chunks is ${size} bytes with sha256 ${actual}, but the manifest says ${expected}`,
      'the manifest\'s chunk list does not produce the file it describes: rebuild the bundle with `ferry bundle build` and push it again');
  }
}

/**
 * Assemble `file` under `filesDir`. Chunks are read one ahead of the write,
 * so memory stays at two chunks whatever the file size. On any failure the
 * temp file is removed and the previous content at the path (if any) is left
 * untouched.
 */
export async function assembleFile(filesDir: string, file: BundleFile, readChunk: ReadChunk, signal: AbortSignal): Promise<void> {
  const target = resolve(filesDir, file.path);
  // Paths were validated already; this is the last line of defence against writing outside.
  if (!target.startsWith(filesDir + sep)) {
    throw new FerryError(ErrorCode.BundleInvalid, `file path ${JSON.stringify(file.path)} resolves outside ${filesDir}`, 'refuse this bundle and rebuild it');
  }
  const dir = dirname(target);
  await mkdirExact(dir);
  const tmp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o600);
  let done = false;
  try {
    const hash = createHash('sha256');
    let pos = 0;
    const chunks = file.chunks;
    let next = chunks.length > 0 ? readChunk(chunks[0]!.digest, chunks[0]!.size) : undefined;
    for (let i = 0; i < chunks.length; i++) {
      const buf = await next!;
      next = i + 1 < chunks.length ? readChunk(chunks[i + 1]!.digest, chunks[i + 1]!.size) : undefined;
      next?.catch(() => undefined); // if we fail before awaiting it, its rejection is not "unhandled"
      if (signal.aborted) throw new FerryError(ErrorCode.Cancelled, `assembling ${file.path} was cancelled`, 'start staging again to resume');
      hash.update(buf);
      await writeAll(fh, buf, pos);
      pos += buf.length;
    }
    await fh.sync();
    const actual = hash.digest('hex');
    if (pos !== file.size || actual !== file.sha256) throw new AssembledFileMismatchError(file.path, file.sha256, actual, pos);
    await fh.chmod(file.mode); // exact mode: open()'s is filtered by umask
    await fh.close();
    await rename(tmp, target);
    done = true;
  } finally {
    if (!done) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    }
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

/**
 * Delete temp files a killed stage left under `dir`, except names that are
 * real manifest paths (`keep`, relative to `dir`). Returns how many.
 */
export async function removeTempFiles(dir: string, keep: ReadonlySet<string>): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  let removed = 0;
  for (const e of entries) {
    if (!e.isFile() || !e.name.startsWith(TEMP_PREFIX)) continue;
    const p = join(e.parentPath, e.name);
    if (keep.has(relative(dir, p).split(sep).join('/'))) continue;
    await unlink(p).catch(() => undefined);
    removed++;
  }
  return removed;
}

/** mkdir -p with mode 0755 on exactly the directories created (mkdir's mode is filtered by umask). */
export async function mkdirExact(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  for (let d = dir; d.length >= first.length; d = dirname(d)) await chmod(d, DIR_MODE);
}

async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let off = 0; off < buf.length;) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    off += bytesWritten;
  }
}
