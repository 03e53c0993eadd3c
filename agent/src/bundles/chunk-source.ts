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
}
