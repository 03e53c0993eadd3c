/**
 * Capped exponential backoff with jitter: the n-th retry waits a random time
 * in [d/2, d] with d = min(cap, base * 2^n), so a fleet that lost its
 * controller does not reconnect in lockstep when it returns.
 */
export class Backoff {
  private attempt = 0;
  constructor(private readonly baseMs = 500, private readonly capMs = 30_000, private readonly random = Math.random) {}

  next(): number {
    const d = Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(d / 2 + this.random() * (d / 2));
  }

  reset(): void {
    this.attempt = 0;
  }
}
