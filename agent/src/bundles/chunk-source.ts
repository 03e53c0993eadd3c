/**
 * Where the agent gets chunk bytes it does not hold. The bundle cache only
 * depends on this interface, so tests drive it with an in-memory source and
 * production with {@link GrpcChunkSource} over `Chunks.Fetch`.
 */

/** One chunk as delivered by a source. Not yet trusted: the cache hashes it before use. */
export interface FetchedChunk {
  digest: string;
  data: Buffer;
  /** The source already hashed it against its digest (relay/fallback-source.ts); the fetcher then checks only its size. */
  verified?: boolean;
  /**
   * Set when `data` lives in a buffer the source reuses: call it once
   * nothing refers to `data` any more (the chunk is written and hashed).
   * Until then the source does not reuse it; never calling it only costs
   * the reuse.
   */
  release?: () => void;
}

/**
 * A supplier of chunk bytes by sha256 digest.
 *
 * Contract for implementations:
 * - yield each requested chunk at most once, in any order (request order is typical);
 * - pull-based: produce the next chunk only when the consumer asks for it, so a slow
 *   disk or a bandwidth cap on the consumer slows the sender instead of growing a buffer;
 * - end normally only after every requested chunk was yielded, or throw a FerryError
 *   (e.g. UNAVAILABLE for a cut link, CHUNK_NOT_FOUND) saying what went wrong;
 * - when `signal` aborts, stop promptly (cancel the underlying call) and throw.
 */
export interface ChunkSource {
  fetch(digests: string[], signal: AbortSignal): AsyncIterable<FetchedChunk>;
  /**
   * Sub-chunk delta fetch (delta-fetch.ts), optional: the sketches of
   * `digests` (Chunks.Sketch), or `undefined` when the far end does not
   * implement it (an older controller, a site relay). Not trusted: the
   * assembled chunk is checked against its digest.
   */
  sketch?(digests: string[], signal: AbortSignal): Promise<SketchReply | undefined>;
  /** Bytes of `ranges` of one chunk, concatenated (Chunks.FetchRanges); only on sources that have {@link sketch}. */
  fetchRanges?(digest: string, ranges: ByteRange[], signal: AbortSignal): Promise<RangesReply>;
}

/** A byte range of a chunk. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** Sketches as a source returned them, with what they cost on the wire. */
export interface SketchReply {
  /** SKETCH_VERSION of the sender; another value than the agent's own means: fetch whole chunks. */
  version: number;
  sketches: Array<{ digest: string; lengths: number[]; hashes: Uint8Array }>;
  /** Bytes the reply took on the link (its encoded message), counted as fetched. */
  wireBytes: number;
}

/** Range bytes as a source returned them, with what they cost on the wire. */
export interface RangesReply {
  data: Buffer;
  /** Bytes the reply took on the link (its encoded message), counted as fetched. */
  wireBytes: number;
}
