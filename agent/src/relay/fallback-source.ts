/**
 * Agents prefer their site's relays and never depend on them
 * (docs/relays.md): a {@link ChunkSource} that asks each assigned relay in
 * turn and the controller last. A relay that fails (refused, down, cut
 * mid-call), stalls (no chunk for `stallMs`) or sends bytes that do not
 * hash to their digest is left for the rest of the call and skipped for
 * `downMs` after; the chunks it did deliver (verified here) stay delivered,
 * so only the rest are asked of the next source. Bad bytes are reported to
 * the relay (Chunks.Recheck), which drops its copy if it is bad.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, FerryError, asFerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import type { ChunkSource, FetchedChunk } from '../bundles/chunk-source.js';

/** A relay as the fallback source uses it. */
export interface RelayLink {
  agentId: string;
  address: string;
  source: ChunkSource;
  /** Tell the relay these chunks came back wrong (best effort). */
  recheck(digests: string[]): Promise<void>;
}

/** Relays that failed lately, shared by every fetch of the agent so later batches skip them at once. */
export class RelayHealth {
  private readonly downUntil = new Map<string, number>();
  /** The last 100 fallbacks, numbered from 1 (`seq`) so a stage can pick those that happened during it. */
  readonly fallbacks: Array<{ seq: number; relay: string; reason: string; atMs: number }> = [];
  private seq = 0;

  /** Number of the latest fallback (0: none yet). */
  get lastSeq(): number {
    return this.seq;
  }

  constructor(private readonly downMs = 30_000, private readonly now: () => number = Date.now) {}

  isDown(agentId: string): boolean {
    return (this.downUntil.get(agentId) ?? 0) > this.now();
  }

  markDown(agentId: string, reason: string): void {
    this.downUntil.set(agentId, this.now() + this.downMs);
    this.fallbacks.push({ seq: ++this.seq, relay: agentId, reason, atMs: this.now() });
    if (this.fallbacks.length > 100) this.fallbacks.shift();
  }
}

/** Options of {@link FallbackChunkSource}. */
export interface FallbackOptions {
  relays: RelayLink[];
  controller: ChunkSource;
  health: RelayHealth;
  log: Logger;
  /** A relay that sends nothing for this long is left (default 10 s). */
  stallMs?: number;
}

/** See module comment. */
export class FallbackChunkSource implements ChunkSource {
  constructor(private readonly o: FallbackOptions) {}

  async *fetch(digests: string[], signal: AbortSignal): AsyncGenerator<FetchedChunk> {
    const pending = new Set(digests);
    for (const relay of this.o.relays) {
      if (pending.size === 0) return;
      if (this.o.health.isDown(relay.agentId)) continue;
      const reason = yield* this.fromRelay(relay, pending, signal);
      if (signal.aborted) throw new FerryError(ErrorCode.Cancelled, 'chunk fetch was cancelled');
      if (reason === undefined) continue;
      this.o.health.markDown(relay.agentId, reason);
      this.o.log.warn({ relay: relay.agentId, address: relay.address, reason, remaining: pending.size },
        'relay failed; fetching the rest from the next relay or the controller');
    }
    if (pending.size === 0) return;
    yield* this.o.controller.fetch([...pending], signal);
  }

  /** Yields what `relay` delivers intact; returns why it was left, or undefined when it delivered everything. */
  private async *fromRelay(relay: RelayLink, pending: Set<string>, outer: AbortSignal): AsyncGenerator<FetchedChunk, string | undefined> {
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    outer.addEventListener('abort', onAbort, { once: true });
    const stallMs = this.o.stallMs ?? 10_000;
    let stalled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { stalled = true; ac.abort(); }, stallMs);
    };
    try {
      arm();
      for await (const c of relay.source.fetch([...pending], ac.signal)) {
        clearTimeout(timer);
        if (!pending.has(c.digest)) return `sent chunk ${String(c.digest).slice(0, 80)}, which was not asked for`;
        // Verified here, so a bad relay is a fallback and not a failed stage; the fetcher then trusts `verified`.
        const actual = createHash('sha256').update(c.data).digest('hex');
        if (actual !== c.digest) {
          void relay.recheck([c.digest]).catch(() => undefined);
          return `chunk ${c.digest} hashed to ${actual} (CHUNK_DIGEST_MISMATCH); reported to the relay`;
        }
        pending.delete(c.digest);
        // The consumer may hold us (bandwidth cap, disk): that is not the relay stalling.
        yield { digest: c.digest, data: c.data, verified: true };
        arm();
      }
      return pending.size === 0 ? undefined : `ended the call with ${pending.size} chunks not sent`;
    } catch (e) {
      if (outer.aborted) throw asFerryError(e);
      if (stalled) return `sent nothing for ${stallMs} ms (stalled)`;
      const fe = asFerryError(e);
      return `${fe.code}: ${fe.message}`;
    } finally {
      clearTimeout(timer);
      outer.removeEventListener('abort', onAbort);
      ac.abort();
    }
  }
}
