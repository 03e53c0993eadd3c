/**
 * Test fixtures for the agent bundle cache: bundles built from seeded random
 * data with the real chunker and signed with a real key, and an in-memory
 * ChunkSource that records what was asked of it and can misbehave on cue.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkBuffer, type FastCdcOptions } from '../../../common/src/bundle/fastcdc.js';
import { signManifest, type BundleFile, type BundleManifest, type SignedManifest } from '../../../common/src/bundle/manifest.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { ByteRange, ChunkSource, FetchedChunk, RangesReply, SketchReply } from '../../../agent/src/bundles/chunk-source.js';
import { SketchServer, type Sketch } from '../../../common/src/bundle/sketch.js';
import { FetchRangesResponse, SketchChunksResponse } from '../../../common/src/gen/ferry/v1/chunks.js';
import { StageJournal } from '../../../agent/src/bundles/stage-journal.js';

export { seededBytes } from '../bundle/prng.js';

/** Small chunks keep tests fast while still giving every file many of them. */
export const SMALL_CHUNKS: Partial<FastCdcOptions> = { minSize: 4 * 1024, avgSize: 16 * 1024, maxSize: 64 * 1024 };

export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A file to put in a test bundle. */
export interface FileSpec {
  path: string;
  data: Buffer;
  mode?: number;
}

/** A built test bundle: the signed manifest and every chunk's bytes. */
export interface TestBundle {
  signed: SignedManifest;
  manifest: BundleManifest;
  chunks: Map<string, Buffer>;
}

/** Chunk `specs` with the real chunker and sign the manifest with `privatePem`. */
export function buildBundle(specs: FileSpec[], privatePem: string, opts: { name?: string; version?: string; chunker?: Partial<FastCdcOptions> } = {}): TestBundle {
  const chunks = new Map<string, Buffer>();
  const files: BundleFile[] = specs.map((s) => {
    const cs = chunkBuffer(s.data, { ...(opts.chunker ?? SMALL_CHUNKS), emitData: true });
    for (const c of cs) chunks.set(c.digest, c.data!);
    return { path: s.path, mode: s.mode ?? 0o644, size: s.data.length, sha256: sha(s.data), chunks: cs.map((c) => ({ digest: c.digest, size: c.length })) };
  });
  const manifest = unsignedManifest(files, opts.name ?? 'demo', opts.version ?? '1.0.0');
  return { signed: signManifest(manifest, privatePem), manifest, chunks };
}

/** A manifest with these files (for hand-made hostile manifests). */
export function unsignedManifest(files: BundleFile[], name = 'demo', version = '1.0.0'): BundleManifest {
  return { schema: 'ferry.bundle/v1', name, version, arch: ['amd64'], createdAt: '2025-01-01T00:00:00Z', files, images: [], rewrites: [] };
}

/**
 * In-memory ChunkSource. Yields chunks in request order, pulled one at a
 * time (like a backpressured stream). Hooks let a test corrupt a chunk, cut
 * the "link" after N chunks, slow it down, or observe each chunk.
 */
export class FakeSource implements ChunkSource {
  /** Every digest ever requested, in call order (duplicates = refetches). */
  readonly requested: string[] = [];
  calls = 0;
  /** Digests whose bytes are sent with one bit flipped. */
  corrupt = new Set<string>();
  /** Throw UNAVAILABLE after this many chunks were delivered in total (once), like a cut cable. */
  failAfter: number | undefined;
  /** Delay before each chunk, ms. */
  delayMs = 0;
  /** Called before each chunk is yielded, with the count delivered so far. */
  onChunk: ((delivered: number) => void) | undefined;
  delivered = 0;

  constructor(readonly chunks: Map<string, Buffer>) {}

  async *fetch(digests: string[], signal: AbortSignal): AsyncGenerator<FetchedChunk> {
    this.calls++;
    this.requested.push(...digests);
    for (const digest of digests) {
      if (signal.aborted) throw new FerryError(ErrorCode.Cancelled, 'fake fetch cancelled');
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.failAfter !== undefined && this.delivered >= this.failAfter) {
        this.failAfter = undefined;
        throw new FerryError(ErrorCode.Unavailable, 'fake link cut');
      }
      const data = this.chunks.get(digest);
      if (!data) throw new FerryError(ErrorCode.ChunkNotFound, `fake source has no chunk ${digest}`);
      this.onChunk?.(this.delivered);
      this.delivered++;
      if (this.corrupt.has(digest)) {
        const bad = Buffer.from(data);
        bad[0]! ^= 1;
        yield { digest, data: bad };
      } else {
        yield { digest, data };
      }
    }
  }
}

export async function tempDir(prefix = 'ferry-agent-bundles-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Every path under `dir` (files and directories), relative, sorted; [] if `dir` is missing. */
export async function tree(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true })).map(String).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** The one bundle id under `cacheDir/bundles` (tests that stage one bundle). */
export async function onlyBundleId(cacheDir: string): Promise<string> {
  const ids = await readdir(join(cacheDir, 'bundles'));
  if (ids.length !== 1) throw new Error(`expected one bundle dir, found ${ids.join(', ')}`);
  return ids[0]!;
}

/** Chunks an interrupted stage kept (written into its part files), per its journal. */
export async function keptChunks(cacheDir: string, bundleId: string): Promise<Set<string>> {
  const { journal, state } = await StageJournal.open(join(cacheDir, 'bundles', bundleId, 'parts', 'journal'));
  await journal.close();
  return state.written;
}

/** Asserts a FerryError with `code` whose message contains every `needle`; for assert.rejects. */
export function ferryError(code: string, ...needles: string[]) {
  return (e: unknown) => {
    if (!(e instanceof FerryError)) throw new Error(`expected a FerryError ${code}, got ${String(e)}`);
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`);
    for (const n of needles) if (!e.message.includes(n)) throw new Error(`message ${JSON.stringify(e.message)} lacks ${JSON.stringify(n)}`);
    if (!e.hint) throw new Error(`error ${e.code} has no hint: ${e.message}`);
    return true;
  };
}

/**
 * FakeSource that also serves Chunks.Sketch / FetchRanges in memory (the
 * controller's SketchServer over the same chunks; reply sizes are the real
 * encoded messages). Hooks let a test make it lie.
 */
export class SketchingSource extends FakeSource implements Required<Pick<ChunkSource, 'sketch' | 'fetchRanges'>> {
  readonly server: SketchServer;
  sketchCalls = 0;
  /** Every FetchRanges call: digest and the bytes asked for. */
  readonly rangeCalls: Array<{ digest: string; bytes: number }> = [];
  /** Replace a chunk's sketch (a lying source). */
  lie: ((digest: string, real: Sketch) => Sketch) | undefined;
  /** Digests whose ranges come back with one bit flipped. */
  corruptRanges = new Set<string>();
  /** Called as each FetchRanges call starts, with the count of calls started before it. */
  onRanges: ((calls: number) => void) | undefined;
  private rangeStarts = 0;

  constructor(chunks: Map<string, Buffer>) {
    super(chunks);
    this.server = new SketchServer(async (d) => {
      const data = this.chunks.get(d);
      if (!data) throw new FerryError(ErrorCode.ChunkNotFound, `fake source has no chunk ${d}`);
      return data;
    });
  }

  async sketch(digests: string[]): Promise<SketchReply> {
    this.sketchCalls++;
    const res = await this.server.sketches(digests);
    const sketches = res.sketches.map((s) => (this.lie ? { digest: s.digest, ...this.lie(s.digest, s) } : s));
    return { version: res.version, sketches, wireBytes: SketchChunksResponse.encode({ version: res.version, sketches }).finish().length };
  }

  async fetchRanges(digest: string, ranges: ByteRange[], signal: AbortSignal): Promise<RangesReply> {
    this.onRanges?.(this.rangeStarts++);
    if (signal.aborted) throw new FerryError(ErrorCode.Cancelled, 'fake fetch cancelled');
    const data = await this.server.ranges(digest, ranges);
    this.rangeCalls.push({ digest, bytes: data.length });
    if (this.corruptRanges.has(digest)) data[0]! ^= 1;
    return { data, wireBytes: FetchRangesResponse.encode({ data }).finish().length };
  }
}
