/**
 * Chunk sketches for sub-chunk delta fetch (Chunks.Sketch / FetchRanges,
 * docs/delta-fetch.md).
 *
 * Bundle chunks are ~1 MiB (FASTCDC_DEFAULTS) so a manifest stays small; but
 * a rebuilt binary differs from the previous one in many small scattered
 * places, and one changed byte costs a whole chunk. A sketch lists a chunk's
 * sub-chunks, cut by the same FastCDC with ~4 KiB parameters, each with its
 * length and a truncated sha256. A host chunks its older copy of the file
 * with the same parameters, copies the sub-chunks it has and fetches only the
 * missing byte ranges. The truncated hashes are hints only: the assembled
 * chunk is always checked against its full digest.
 *
 * COMPATIBILITY: the parameters and the truncation are a wire format, named
 * by {@link SKETCH_VERSION}. Change any of them and bump the version; a
 * client that does not know a version fetches whole chunks.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, FerryError } from '../errors.js';
import { chunkBuffer, type FastCdcOptions } from './fastcdc.js';

/** Version of {@link SKETCH_CHUNKER} + {@link SKETCH_HASH_BYTES}, sent with every sketch. */
export const SKETCH_VERSION = 1;

/**
 * Sub-chunk sizes: 1 KiB min, 4 KiB average, 16 KiB max. Measured on two
 * agent builds (bench-results/upgrades.md): bytes in sub-chunks the old
 * binary lacks were 0.38 MiB at 4 KiB, 0.50 at 16 KiB, 0.68 at 64 KiB; the
 * sketch costs ~10 bytes per sub-chunk, ~2.5 KiB per 1 MiB chunk.
 */
export const SKETCH_CHUNKER: Readonly<Pick<FastCdcOptions, 'minSize' | 'avgSize' | 'maxSize'>> = Object.freeze({
  minSize: 1024,
  avgSize: 4096,
  maxSize: 16384,
});

/** Bytes of each sub-chunk's sha256 in a sketch: 64 bits make an accidental match unlikely; a match is verified anyway. */
export const SKETCH_HASH_BYTES = 8;

/** A chunk's sketch: sub-chunk lengths in order and their truncated hashes, concatenated. */
export interface Sketch {
  lengths: number[];
  hashes: Buffer;
}

/** Sketch of a chunk's bytes (see module comment). */
export function sketchOf(data: Uint8Array): Sketch {
  const subs = chunkBuffer(data, SKETCH_CHUNKER);
  const hashes = Buffer.allocUnsafe(subs.length * SKETCH_HASH_BYTES);
  subs.forEach((s, i) => hashes.write(s.digest.slice(0, 2 * SKETCH_HASH_BYTES), i * SKETCH_HASH_BYTES, 'hex'));
  return { lengths: subs.map((s) => s.length), hashes };
}

/**
 * Key of a sub-chunk for lookups: its length and truncated hash, so a seed
 * index and a sketch meet on the same string. `hash` is the truncated hash
 * (a sketch's slice) or a full sha256 hex digest (the seed's chunker output).
 */
export function subChunkKey(length: number, hash: Uint8Array | string): string {
  const hex = typeof hash === 'string' ? hash.slice(0, 2 * SKETCH_HASH_BYTES) : Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex');
  return `${length}:${hex}`;
}

/** sha256 of `data`, hex: the full-chunk check after assembly. */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Most chunks one Sketch call may name: each costs the server a chunk read and a sub-chunking pass. */
export const MAX_SKETCH_DIGESTS = 64;
/** Most ranges one FetchRanges call may ask for (a 4 MiB chunk has at most 4096 sub-chunks of 1 KiB). */
export const MAX_RANGES_PER_CALL = 4096;
/** Sketches remembered by a server (~2.5 KiB each for 1 MiB chunks): a fleet upgrade asks for the same few chunks from every host. */
const MAX_CACHED_SKETCHES = 2048;

/** The server side of Chunks.Sketch / FetchRanges over any chunk reader that verifies what it reads (ServedChunks on the controller). */
export class SketchServer {
  private readonly cache = new Map<string, Sketch>();

  /** `read` returns the chunk's bytes (verified against its digest) or throws as Chunks.Fetch would (not found, corrupt). */
  constructor(private readonly read: (digest: string) => Promise<Buffer>) {}

  /** Sketches of `digests`, in order (see module comment). Throws INVALID_ARGUMENT past {@link MAX_SKETCH_DIGESTS}. */
  async sketches(digests: readonly string[]): Promise<{ version: number; sketches: Array<Sketch & { digest: string }> }> {
    if (digests.length > MAX_SKETCH_DIGESTS) {
      throw new FerryError(ErrorCode.InvalidArgument, `asked for ${digests.length} sketches in one call; the limit is ${MAX_SKETCH_DIGESTS}`);
    }
    const out: Array<Sketch & { digest: string }> = [];
    for (const digest of digests) {
      let s = this.cache.get(digest);
      if (!s) {
        s = sketchOf(await this.read(digest));
        if (this.cache.size >= MAX_CACHED_SKETCHES) this.cache.delete(this.cache.keys().next().value!);
        this.cache.set(digest, s);
      }
      out.push({ digest, ...s });
    }
    return { version: SKETCH_VERSION, sketches: out };
  }

  /** The bytes of `ranges` of chunk `digest`, concatenated. Throws INVALID_ARGUMENT for a range outside the chunk. */
  async ranges(digest: string, ranges: ReadonlyArray<{ offset: number; length: number }>): Promise<Buffer> {
    if (ranges.length > MAX_RANGES_PER_CALL) {
      throw new FerryError(ErrorCode.InvalidArgument, `asked for ${ranges.length} ranges in one call; the limit is ${MAX_RANGES_PER_CALL}`);
    }
    const data = await this.read(digest);
    let total = 0;
    for (const r of ranges) {
      if (r.length === 0 || r.offset + r.length > data.length) {
        throw new FerryError(ErrorCode.InvalidArgument, `range ${r.offset}+${r.length} is not inside chunk ${digest} (${data.length} bytes)`);
      }
      total += r.length;
    }
    // A client asking for more than the chunk in ranges is confused: Fetch is cheaper for it.
    if (total > data.length) throw new FerryError(ErrorCode.InvalidArgument, `ranges add up to ${total} bytes, more than chunk ${digest} (${data.length} bytes)`);
    const out = Buffer.allocUnsafe(total);
    let at = 0;
    for (const r of ranges) at += data.copy(out, at, r.offset, r.offset + r.length);
    return out;
  }
}
