/**
 * Single-file bundle for carrying across an air gap (`ferry bundle build DIR -o x.ferry`):
 * a plain ustar archive whose first entry is `manifest.json` (the SignedManifest as JSON),
 * followed by one `chunks/<sha256hex>` entry per distinct chunk, in manifest order. Any tar
 * can list it; nothing in it is a path that an extractor could misuse.
 *
 * Output is deterministic (mtime 0, uid/gid 0, no user names), so the same bundle always gives
 * the same bytes and the file's own sha256 can be published next to it.
 *
 * Reading verifies as it streams: every chunk against its name and the manifest, every entry
 * name against the two allowed shapes, and the end against the manifest's chunk list, so a
 * truncated copy from a USB stick is an error, never a short bundle.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, statfs, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ErrorCode, FerryError } from '../errors.js';
import { assertSafeBundlePath } from './builder.js';
import { isSha256Hex } from './digest.js';
import { type BundleManifest, type SignedManifest, verifyManifest } from './manifest.js';
import { TarReader } from './tar-reader.js';

const BLOCK = 512;
/** Manifests are small JSON; a bigger first entry is not a bundle (and must not be buffered). */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
/**
 * Chunks are ≤ 4 MiB (FastCDC defaults); a manifest declaring a huge one would make the reader
 * allocate it, so anything above this is refused as damaged or hostile.
 */
const MAX_CHUNK_BYTES = 64 * 1024 * 1024;
const MANIFEST_ENTRY = 'manifest.json';
const CHUNK_ENTRY = /^chunks\/([0-9a-f]{64})$/;

/** One verified chunk from {@link readBundleArchive}. */
export interface ArchiveChunk {
  digest: string;
  data: Buffer;
}

/** An opened bundle archive. */
export interface BundleArchive {
  signed: SignedManifest;
  /** Parsed manifest: signature-verified only if `trustedKeys` were given to {@link readBundleArchive}. */
  manifest: BundleManifest;
  /** Every chunk once, verified, in archive order. Can be iterated once. */
  chunks(): AsyncIterable<ArchiveChunk>;
  /** Release the file if iteration was not run to the end. */
  close(): void;
}

function header(name: string, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1'); // sizes are ≤ 64 MiB (checked), far below ustar's 8 GiB
  h.write('00000000000\0', 136, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

const pad = (n: number) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** Bytes the archive for `m` will take: for the free-space check before writing. */
function archiveSize(manifestBytes: number, m: BundleManifest): number {
  let n = BLOCK + manifestBytes + pad(manifestBytes).length + 2 * BLOCK;
  const seen = new Set<string>();
  for (const f of m.files) {
    for (const c of f.chunks) {
      if (seen.has(c.digest)) continue;
      seen.add(c.digest);
      n += BLOCK + c.size + pad(c.size).length;
    }
  }
  return n;
}

function parseManifest(text: string, where: string): BundleManifest {
  let m: BundleManifest;
  try {
    m = JSON.parse(text) as BundleManifest;
  } catch (e) {
    throw new FerryError(ErrorCode.BundleInvalid, `${where}: manifest is not JSON (${(e as Error).message})`, 'rebuild the bundle');
  }
  if (m?.schema !== 'ferry.bundle/v1' || !Array.isArray(m.files)) {
    throw new FerryError(ErrorCode.BundleInvalid, `${where}: not a ferry.bundle/v1 manifest`, 'build it with `ferry bundle build`, or upgrade Ferry on this side');
  }
  for (const f of m.files) {
    assertSafeBundlePath(f.path);
    for (const c of f.chunks) {
      if (!isSha256Hex(c.digest) || !Number.isSafeInteger(c.size) || c.size < 0 || c.size > MAX_CHUNK_BYTES) {
        throw new FerryError(ErrorCode.BundleInvalid, `${where}: ${f.path} has an invalid chunk entry`, 'the manifest is damaged or hostile; rebuild the bundle');
      }
    }
  }
  return m;
}

/**
 * Write `signed` and every chunk of its files (read from `dir`, verified) to `outPath`.
 * Atomic: a temp file in the same directory, fsync, rename, fsync of the directory, so
 * `outPath` is either the previous file or the complete new one. Memory: one chunk at a time.
 */
export async function writeBundleArchive(signed: SignedManifest, dir: string, outPath: string): Promise<{ bytes: number; chunks: number }> {
  const manifestJson = Buffer.from(JSON.stringify(signed));
  const m = parseManifest(signed.manifest, outPath);
  if (manifestJson.length > MAX_MANIFEST_BYTES) {
    throw new FerryError(ErrorCode.BundleInvalid, `the manifest is ${manifestJson.length} bytes, more than readers accept (${MAX_MANIFEST_BYTES})`, 'split the package into several bundles');
  }
  const total = archiveSize(manifestJson.length, m);
  const outDir = dirname(outPath);
  const fs = await statfs(outDir).catch(() => undefined);
  if (fs && fs.bavail * fs.bsize < total) {
    throw new FerryError(ErrorCode.DiskFull, `${outDir} has ${Math.floor((fs.bavail * fs.bsize) / 2 ** 20)} MiB free, the bundle archive needs ${Math.ceil(total / 2 ** 20)} MiB`,
      'free space there or write the archive elsewhere with -o');
  }
  const tmp = join(outDir, `.${basename(outPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'wx', 0o644).catch((e: NodeJS.ErrnoException) => {
    throw fsError(e, `cannot create ${outPath}`, 'write the archive to an existing, writable directory (-o)');
  });
  let written = 0;
  let count = 0;
  const write = async (...bufs: Buffer[]) => {
    await fh.writev(bufs);
    for (const b of bufs) written += b.length;
  };
  try {
    await write(header(MANIFEST_ENTRY, manifestJson.length), manifestJson, pad(manifestJson.length));
    const seen = new Set<string>();
    for (const f of m.files) {
      let offset = 0;
      const src = f.chunks.some((c) => !seen.has(c.digest)) ? await open(join(dir, f.path), 'r') : undefined;
      try {
        for (const c of f.chunks) {
          if (src && !seen.has(c.digest)) {
            seen.add(c.digest);
            const data = await readExactly(src, c.size, offset, f.path);
            const actual = createHash('sha256').update(data).digest('hex');
            if (actual !== c.digest) {
              throw new FerryError(ErrorCode.BundleInvalid, `${f.path} changed since the manifest was built (bytes at offset ${offset} hash to ${actual}, manifest says ${c.digest})`,
                'build the bundle again from the current directory');
            }
            await write(header(`chunks/${c.digest}`, c.size), data, pad(c.size));
            count++;
          }
          offset += c.size;
        }
      } finally {
        await src?.close();
      }
    }
    await write(Buffer.alloc(2 * BLOCK));
    await fh.sync();
    await fh.close();
    await rename(tmp, outPath);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new FerryError(ErrorCode.DiskFull, `no space left in ${outDir} after writing ${written} of ${total} bytes of ${outPath}`, 'free space there or write the archive elsewhere with -o', { cause: e });
    }
    throw e;
  }
  const d = await open(outDir, 'r');
  await d.sync().finally(() => d.close());
  return { bytes: written, chunks: count };
}

async function readExactly(fh: import('node:fs/promises').FileHandle, size: number, offset: number, path: string): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  while (got < size) {
    const { bytesRead } = await fh.read(buf, got, size - got, offset + got);
    if (bytesRead === 0) {
      throw new FerryError(ErrorCode.BundleInvalid, `${path} is shorter than the manifest says (ends before byte ${offset + size})`, 'build the bundle again from the current directory');
    }
    got += bytesRead;
  }
  return buf;
}

const isFsError = (e: unknown): e is NodeJS.ErrnoException => typeof (e as NodeJS.ErrnoException)?.syscall === 'string';

/** A file-system error as a FerryError that says which file and what to do. */
function fsError(e: NodeJS.ErrnoException, what: string, hint: string): FerryError {
  const code = e.code === 'ENOENT' ? ErrorCode.NotFound : e.code === 'EACCES' || e.code === 'EPERM' ? ErrorCode.PermissionDenied : ErrorCode.InvalidArgument;
  return new FerryError(code, `${what}: ${e.code ?? e.message}`, hint, { cause: e });
}

/** Prefix an archive path onto a reader error, keeping its code and hint. */
function inArchive(path: string, e: unknown): unknown {
  if (!(e instanceof FerryError) || e.message.startsWith(`${path}:`)) return e;
  return new FerryError(e.code, `${path}: ${e.message}`, e.hint, { cause: e });
}

/**
 * Open a bundle archive: reads up to the end of `manifest.json` and returns; chunks are read
 * as {@link BundleArchive.chunks} is iterated. With `trustedKeys` (operator public keys, PEM)
 * the manifest signature is verified before anything else is believed.
 *
 * Errors (FerryError codes): BUNDLE_INVALID (not a bundle, unknown or duplicate entry, wrong
 * chunk size, missing chunks), CHUNK_DIGEST_MISMATCH (corrupted chunk), TAR_TRUNCATED,
 * TAR_MALFORMED, TAR_PATH_ESCAPE, SIGNATURE_INVALID.
 */
export async function readBundleArchive(path: string, opts: { trustedKeys?: readonly string[] } = {}): Promise<BundleArchive> {
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  const it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const ready: ArchiveChunk[] = [];
  const expected = new Map<string, number>();
  const seen = new Set<string>();
  let signed: SignedManifest | undefined;
  let manifest: BundleManifest | undefined;
  let entries = 0;
  const bad = (msg: string) => new FerryError(ErrorCode.BundleInvalid, `${path}: ${msg}`, 'copy the archive again from the original; if it persists, rebuild it with `ferry bundle build`');

  const reader = new TarReader((e) => {
    if (entries++ === 0) {
      if (e.name !== MANIFEST_ENTRY || e.type !== 'file') throw bad(`first entry is ${JSON.stringify(e.name)}, not manifest.json: not a Ferry bundle archive`);
      if (e.size > MAX_MANIFEST_BYTES) throw bad(`manifest.json is ${e.size} bytes, more than ${MAX_MANIFEST_BYTES}`);
      const parts: Buffer[] = [];
      return {
        data: (c) => void parts.push(Buffer.from(c)),
        end: () => {
          ({ signed, manifest } = openManifest(Buffer.concat(parts).toString('utf8'), path, opts.trustedKeys));
          for (const f of manifest.files) for (const c of f.chunks) expected.set(c.digest, c.size);
        },
      };
    }
    const m = CHUNK_ENTRY.exec(e.name);
    if (!m || e.type !== 'file') throw bad(`unexpected ${e.type} entry ${JSON.stringify(e.name)}: a bundle holds only manifest.json and chunks/<sha256>`);
    const digest = m[1]!;
    if (!expected.has(digest)) throw bad(`entry ${e.name} is not a chunk of this bundle's manifest`);
    if (seen.has(digest)) throw bad(`chunk ${digest} appears twice`);
    if (expected.get(digest) !== e.size) throw bad(`chunk ${digest} is ${e.size} bytes, the manifest says ${expected.get(digest)}`);
    seen.add(digest);
    const hash = createHash('sha256');
    const data = Buffer.allocUnsafe(e.size);
    let at = 0;
    return {
      data: (c) => {
        hash.update(c);
        at += c.copy(data, at);
      },
      end: () => {
        const actual = hash.digest('hex');
        if (actual !== digest) {
          throw new FerryError(ErrorCode.ChunkDigestMismatch, `${path}: chunk ${digest} is corrupted (its bytes hash to ${actual})`,
            'the archive was damaged in transit or storage; copy it again and compare its sha256 with the source');
        }
        ready.push({ digest, data });
      },
    };
  });

  const pump = async (): Promise<boolean> => {
    const n = await it.next();
    if (n.done) return false;
    reader.push(n.value);
    return true;
  };
  try {
    while (!signed) {
      if (!(await pump())) {
        reader.end();
        throw bad(entries === 0 ? 'archive is empty' : 'archive ends inside manifest.json');
      }
    }
  } catch (e) {
    stream.destroy();
    if (isFsError(e)) throw fsError(e, `cannot read ${path}`, 'pass the .ferry file written by `ferry bundle build -o`');
    if (entries === 0 && e instanceof FerryError && e.code === ErrorCode.TarMalformed) {
      throw new FerryError(ErrorCode.BundleInvalid, `${path} is not a Ferry bundle archive (not a tar file: ${e.message})`,
        'pass the .ferry file written by `ferry bundle build -o`', { cause: e });
    }
    throw inArchive(path, e);
  }
  let iterated = false;
  return {
    signed,
    manifest: manifest!,
    close: () => void stream.destroy(),
    chunks: () => {
      if (iterated) throw new FerryError(ErrorCode.InvalidArgument, `${path}: chunks() can be iterated only once`, 'open the archive again');
      iterated = true;
      return (async function* () {
        try {
          for (;;) {
            while (ready.length > 0) yield ready.shift()!;
            if (!(await pump())) break;
          }
          reader.end();
          if (seen.size !== expected.size) throw bad(`archive ends after ${seen.size} of ${expected.size} chunks: it is incomplete`);
        } catch (e) {
          throw inArchive(path, e);
        } finally {
          stream.destroy();
        }
      })();
    },
  };
}

function openManifest(text: string, path: string, trustedKeys?: readonly string[]): { signed: SignedManifest; manifest: BundleManifest } {
  let signed: SignedManifest;
  try {
    signed = JSON.parse(text) as SignedManifest;
  } catch (e) {
    throw new FerryError(ErrorCode.BundleInvalid, `${path}: manifest.json is not JSON (${(e as Error).message})`, 'copy the archive again; if it persists, rebuild it');
  }
  if (typeof signed?.manifest !== 'string' || typeof signed.signature !== 'string' || typeof signed.keyId !== 'string') {
    throw new FerryError(ErrorCode.BundleInvalid, `${path}: manifest.json is not a signed manifest (needs manifest, signature, keyId)`, 'rebuild it with `ferry bundle build`');
  }
  const manifest = trustedKeys ? verifyManifest(signed, trustedKeys) : parseManifest(signed.manifest, path);
  if (trustedKeys) parseManifest(signed.manifest, path); // same structural checks on a verified manifest
  return { signed: { manifest: signed.manifest, signature: signed.signature, keyId: signed.keyId }, manifest };
}
