/**
 * Byte-rate limiter shared by every chunk call of one stage, so the cap is
 * the total the agent takes from a thin site uplink, not a per-stream rate.
 */
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

/**
 * Token bucket that may go into debt: `take(n)` for an n larger than the
 * burst (a 4 MiB chunk under a 64 KiB/s cap) still works, the caller just
 * waits until the debt is paid back. The bucket starts EMPTY, so a capped
 * transfer never opens with a burst at link speed: on a shared satellite or
 * LTE uplink the first seconds matter as much as the average.
 */
export class TokenBucket {
  private tokens = 0;
  private last = performance.now();
  private readonly burst: number;

  /** `bytesPerSec` 0 (or less) means unlimited: `take` returns at once. */
  constructor(readonly bytesPerSec: number, burstSeconds = 0.25) {
    this.burst = Math.max(64 * 1024, bytesPerSec * burstSeconds);
  }

  /** Account for `n` bytes; resolves when the rate allows them. Rejects with CANCELLED on abort. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    if (!(this.bytesPerSec > 0)) return;
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.bytesPerSec);
    this.last = now;
    this.tokens -= n;
    if (this.tokens >= 0) return;
    await sleep((-this.tokens / this.bytesPerSec) * 1000, signal);
  }
}

/** setTimeout as a promise that an AbortSignal can cut short (rejects with CANCELLED). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = () => reject(new FerryError(ErrorCode.Cancelled, 'cancelled while waiting', 'start the operation again to resume'));
    if (signal?.aborted) return fail();
    const onAbort = () => {
      clearTimeout(t);
      fail();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
