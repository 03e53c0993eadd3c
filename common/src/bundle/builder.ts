/**
 * Build a bundle manifest from an offline-package directory (`images/*.tar`, `bin/`, `crds/`,
 * `manifests/`, `helm-charts/`, `meta/`, anything else): every regular file with its mode,
 * size, sha256 and FastCDC chunks, and every container image inside the image tars.
 *
 * What goes in, decided once here so every tool agrees:
 *   - regular files only, at sorted relative POSIX paths (byte order); empty directories are
 *     not recorded (file.install creates parents);
 *   - mode is the permission bits: setuid/setgid/sticky are stripped, because a bundle must
 *     not be able to plant a setuid binary on every host in the fleet;
 *   - a symlink whose target resolves to a regular file inside the directory is stored as that
 *     file's content under the link's path (k3s packages ship `bin/kubectl -> k3s`; chunks are
 *     deduplicated, so the copy costs no transfer). Links to directories, dangling links and
 *     links that resolve outside the directory are refused, as are devices, sockets and fifos;
 *   - names with backslashes, control characters or invalid UTF-8 are refused: they are legal
 *     on Linux but render ambiguously in logs and break tools on the way to the host.
 *
 * Image tars are hashed, chunked and inspected in one read: `images/**.tar(.gz|.tgz)` must be
 * valid images (a broken export fails the build); tars elsewhere count as images if they
 * inspect as one.
 */
import { createReadStream, type Dirent } from 'node:fs';
import { lstat, open, readdir, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { createHash } from 'node:crypto';
import { ErrorCode, FerryError } from '../errors.js';
import { assertBundleConfig, archProblem, loadBundleConfig, type BundleConfig } from './bundle-config.js';
import { FastCdcChunker, chunkFile, type Chunk, type FileChunks } from './fastcdc.js';
import { inspectImageTar, inspectImageTarFile, type ImageTarInfo } from './image-tar.js';
import type { BundleFile, BundleImage, BundleManifest } from './manifest.js';
import { BuildPool, defaultBuildWorkers, type BuiltFile } from './build-pool.js';

/** A regular file found by {@link walkBundle}. */
export interface BundleEntry {
  /** Bundle-relative POSIX path. */
  path: string;
  /** Where the bytes are read from (the link target for symlinks). */
  absPath: string;
  /** Permission bits only. */
  mode: number;
  size: number;
}

/** Where a chunk's bytes live in the source directory. */
export interface ChunkLocation {
  /** Bundle-relative path of the first file containing the chunk. */
  path: string;
  offset: number;
  size: number;
}

/** Options for {@link buildManifest}; CLI flags override ferry-bundle.yaml. */
export interface BuildOptions {
  name?: string;
  version?: string;
  arch?: string[];
  /** Use this config instead of reading DIR/ferry-bundle.yaml. */
  config?: BundleConfig;
  /** Skip these bundle-relative paths (e.g. the output file when it is written inside DIR). */
  exclude?: (path: string) => boolean;
  /** Timestamp for `createdAt` (tests pin it). */
  now?: Date;
  /** Worker threads that chunk and hash files (default: {@link defaultBuildWorkers}); 0 does it on this thread. */
  workers?: number;
}

const TAR_NAME = /\.(?:tar|tar\.gz|tgz)$/i;
const BAD_CHAR = /[\\\u0000-\u001f\u007f\ufffd]/;

function invalid(message: string, hint: string): FerryError {
  return new FerryError(ErrorCode.BundleInvalid, message, hint);
}

/**
 * Check a bundle-relative path (from a directory walk or from a manifest someone sent us):
 * non-empty POSIX components, none `.` or `..`, no backslash, control character or U+FFFD.
 */
export function assertSafeBundlePath(p: string): string {
  const bad = p === '' || p.startsWith('/') || p.split('/').some((c) => c === '' || c === '.' || c === '..' || BAD_CHAR.test(c));
  if (bad) {
    throw invalid(`bundle path ${JSON.stringify(p)} is not a safe relative path (empty, absolute, "."/".." component, backslash, control character or invalid UTF-8)`,
      'rename the file to plain printable UTF-8 without backslashes; if this came from a manifest, the manifest is damaged or hostile');
  }
  return p;
}

/** Every regular file under `dir`, checked and sorted (see module comment for the rules). */
export async function walkBundle(dir: string, opts: { exclude?: (path: string) => boolean } = {}): Promise<BundleEntry[]> {
  const root = await realpath(dir).catch((e: NodeJS.ErrnoException) => {
    throw new FerryError(ErrorCode.NotFound, `bundle directory ${dir} cannot be opened: ${e.code ?? e.message}`, 'pass the offline-package directory (the one containing images/, bin/, manifests/ …)');
  });
  if (!(await stat(root)).isDirectory()) throw new FerryError(ErrorCode.InvalidArgument, `${dir} is not a directory`, 'pass the offline-package directory');
  const out: BundleEntry[] = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    let ents: Dirent[];
    try {
      ents = await readdir(abs, { withFileTypes: true });
    } catch (e) {
      throw invalid(`${rel || '.'}: cannot read directory (${(e as NodeJS.ErrnoException).code})`, 'make it readable by the user running ferry');
    }
    for (const d of ents) {
      const path = rel ? `${rel}/${d.name}` : d.name;
      assertSafeBundlePath(path);
      if (opts.exclude?.(path)) continue;
      const full = join(abs, d.name);
      if (d.isDirectory()) await walk(full, path);
      else if (d.isFile()) out.push(await entryFor(path, full));
      else if (d.isSymbolicLink()) out.push(await followLink(root, path, full));
      else throw invalid(`${path} is a ${kindOf(d)}, not a regular file`, 'bundles carry regular files only; remove it from the package directory');
    }
  };
  await walk(root, '');
  return out.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

function kindOf(d: { isFIFO(): boolean; isSocket(): boolean; isBlockDevice(): boolean; isCharacterDevice(): boolean }): string {
  return d.isFIFO() ? 'fifo' : d.isSocket() ? 'socket' : d.isBlockDevice() ? 'block device' : d.isCharacterDevice() ? 'character device' : 'special file';
}

async function entryFor(path: string, absPath: string): Promise<BundleEntry> {
  const st = await lstat(absPath);
  return { path, absPath, mode: st.mode & 0o777, size: st.size };
}

async function followLink(root: string, path: string, full: string): Promise<BundleEntry> {
  let target: string;
  try {
    target = await realpath(full);
  } catch {
    throw invalid(`${path} is a dangling symbolic link`, 'remove the link or add the file it points to');
  }
  if (target !== root && !target.startsWith(root + sep)) {
    throw invalid(`${path} is a symbolic link to ${target}, outside the bundle directory`,
      'copy the file into the package directory instead of linking to it (links out of the bundle would not exist on the hosts)');
  }
  const st = await lstat(target);
  if (st.isDirectory()) {
    throw invalid(`${path} is a symbolic link to a directory`, 'replace the link with the directory itself (links to files are stored as the file)');
  }
  if (!st.isFile()) throw invalid(`${path} links to a ${kindOf(st)}`, 'bundles carry regular files only');
  return { path, absPath: target, mode: st.mode & 0o777, size: st.size };
}

/** Chunk a file and, in the same read, inspect it as an image tar. */
export async function chunkAndInspect(absPath: string): Promise<{ chunks: FileChunks; info?: ImageTarInfo; error?: unknown }> {
  const whole = createHash('sha256');
  const c = new FastCdcChunker();
  const chunks: Chunk[] = [];
  let complete = false;
  async function* tap(): AsyncGenerator<Buffer> {
    for await (const b of createReadStream(absPath, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      whole.update(b);
      chunks.push(...c.push(b));
      yield b;
    }
    complete = true;
  }
  let info: ImageTarInfo | undefined;
  let error: unknown;
  try {
    info = await inspectImageTar(tap());
  } catch (e) {
    error = e;
  }
  // Inspection may stop reading early (it failed, or ignored trailing bytes): chunk it afresh.
  if (!complete) return { chunks: await chunkFile(absPath), info, error };
  chunks.push(...c.finish());
  return { chunks: { size: c.bytesProcessed, sha256: whole.digest('hex'), chunks }, info, error };
}

/** The manifest's image entries for one inspected image tar. */
export function toImages(file: string, info: ImageTarInfo): BundleImage[] {
  return info.images.map((i) => ({
    file,
    format: info.format,
    refs: [...i.refs],
    platform: { ...i.platform },
    manifestDigest: i.manifestDigest,
    configDigest: i.configDigest,
    totalSize: i.totalSize,
  }));
}

/** Inspect image tars only (no chunking): what `ferry bundle lint` needs. */
export async function inspectBundleImages(entries: readonly BundleEntry[]): Promise<BundleImage[]> {
  const images: BundleImage[] = [];
  for (const e of entries) {
    if (!TAR_NAME.test(e.path)) continue;
    try {
      images.push(...toImages(e.path, await inspectImageTarFile(e.absPath)));
    } catch (err) {
      if (e.path.startsWith('images/')) throw imageError(e.path, err);
    }
  }
  return images;
}

function imageError(path: string, err: unknown): FerryError {
  const f = err instanceof FerryError ? err : undefined;
  return new FerryError(f?.code ?? ErrorCode.BundleInvalid, `${path}: ${(err as Error).message}`,
    f?.hint ?? 'files under images/ must be image tars (`docker save` / `skopeo copy … docker-archive:`); move other files elsewhere', { cause: err });
}

/** One file chunked (and inspected) on this thread: what a worker does, for `workers: 0`. */
async function buildInThread(absPath: string, inspect: boolean): Promise<BuiltFile> {
  if (!inspect) return { chunks: await chunkFile(absPath) };
  const r = await chunkAndInspect(absPath);
  return { chunks: r.chunks, info: r.info, inspectError: r.error as Error | undefined };
}

/**
 * Walk `dir`, chunk every file and inspect every image tar. Name, version and arch come from
 * `opts`, else ferry-bundle.yaml; arch defaults to the architectures of the images found.
 */
export async function buildManifest(dir: string, opts: BuildOptions = {}): Promise<BundleManifest> {
  const config = opts.config ?? assertBundleConfig(await loadBundleConfig(dir));
  const name = opts.name ?? config.name;
  const version = opts.version ?? config.version;
  if (!name || !version) {
    throw new FerryError(ErrorCode.InvalidArgument, `bundle ${!name ? 'name' : 'version'} is not set for ${dir}`,
      'pass --name and --version, or put `name:` and `version:` in ferry-bundle.yaml at the bundle root');
  }
  for (const a of opts.arch ?? []) {
    const p = archProblem(a);
    if (p) throw new FerryError(ErrorCode.InvalidArgument, `--arch: ${p}`, 'use image platform architecture names');
  }
  const files: BundleFile[] = [];
  const images: BundleImage[] = [];
  const entries = await walkBundle(dir, { exclude: opts.exclude });
  const workers = opts.workers ?? defaultBuildWorkers();
  const pool = workers > 0 && entries.length > 0 ? new BuildPool(Math.min(workers, entries.length)) : undefined;
  try {
    // Every file is queued at once (the pool runs `workers` of them at a time); results are taken in walk order.
    const built = entries.map((e) => (pool ? pool.file(e.absPath, TAR_NAME.test(e.path)) : buildInThread(e.absPath, TAR_NAME.test(e.path))));
    for (const b of built) b.catch(() => undefined); // awaited in order below; a later failure must not be unhandled meanwhile
    for (const [i, e] of entries.entries()) {
      const r = await built[i]!;
      const fc: FileChunks = r.chunks;
      if (TAR_NAME.test(e.path)) {
        if (r.info) images.push(...toImages(e.path, r.info));
        else if (e.path.startsWith('images/')) throw imageError(e.path, r.inspectError);
      }
      if (fc.size !== e.size) {
        throw invalid(`${e.path} changed size while the bundle was being built (${e.size} → ${fc.size} bytes)`, 'wait for whatever is writing the package directory to finish, then build again');
      }
      files.push({ path: e.path, mode: e.mode, size: fc.size, sha256: fc.sha256, chunks: fc.chunks.map((c) => ({ digest: c.digest, size: c.length })) });
    }
  } finally {
    await pool?.close();
  }
  let arch = opts.arch ?? config.arch;
  if (!arch || arch.length === 0) {
    arch = [...new Set(images.map((i) => (i.platform.architecture === 'arm' && i.platform.variant ? `arm/${i.platform.variant}` : i.platform.architecture)))].sort();
    if (arch.length === 0) {
      throw new FerryError(ErrorCode.InvalidArgument, `cannot tell the architecture of bundle ${name}: it has no images`,
        'pass --arch (e.g. --arch amd64) or set `arch:` in ferry-bundle.yaml');
    }
  }
  return {
    schema: 'ferry.bundle/v1',
    name,
    version,
    arch: [...arch],
    createdAt: (opts.now ?? new Date()).toISOString(),
    files,
    images,
    rewrites: config.rewrites.map((r) => ({ ...r })),
  };
}

/**
 * For each distinct chunk digest, the first place its bytes can be read from in `dir`: what a
 * pusher or archive writer needs to send chunks without a chunk store. Paths are checked with
 * {@link assertSafeBundlePath}, so a hostile manifest cannot point reads outside `dir`.
 */
export function locateChunks(manifest: BundleManifest, dir: string): Map<string, ChunkLocation> {
  void dir; // reads resolve against dir in readChunk; kept in the signature for symmetry
  const out = new Map<string, ChunkLocation>();
  for (const f of manifest.files) {
    assertSafeBundlePath(f.path);
    let offset = 0;
    for (const c of f.chunks) {
      if (!out.has(c.digest)) out.set(c.digest, { path: f.path, offset, size: c.size });
      offset += c.size;
    }
  }
  return out;
}

/**
 * Read one chunk's bytes from the source directory. With `digest`, the bytes are verified, so
 * a file edited after the manifest was built is caught here rather than on a host.
 */
export async function readChunk(dir: string, loc: ChunkLocation, digest?: string): Promise<Buffer> {
  const fh = await open(join(dir, assertSafeBundlePath(loc.path)), 'r');
  try {
    const buf = Buffer.allocUnsafe(loc.size);
    let got = 0;
    while (got < loc.size) {
      const { bytesRead } = await fh.read(buf, got, loc.size - got, loc.offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got < loc.size) {
      throw invalid(`${loc.path} is shorter than the manifest says (needed ${loc.size} bytes at offset ${loc.offset}, got ${got})`,
        'the package directory changed after the manifest was built; build the bundle again');
    }
    if (digest !== undefined) {
      const actual = createHash('sha256').update(buf).digest('hex');
      if (actual !== digest) {
        throw invalid(`${loc.path} changed since the manifest was built: ${loc.size} bytes at offset ${loc.offset} hash to ${actual}, the manifest says ${digest}`,
          'build the bundle again from the current directory');
      }
    }
    return buf;
  } finally {
    await fh.close();
  }
}
