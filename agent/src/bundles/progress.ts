/**
 * Progress reporting for a stage, throttled: each report becomes a session
 * message to the controller, and a thin link should carry chunks, not a
 * progress message per chunk.
 */

/** Where a stage stands. */
export interface StageProgress {
  /** Bytes of the bundle's files whose content is on this host (reused or fetched). */
  bytesDone: number;
  /** Total size of the bundle's files. */
  bytesTotal: number;
  /** Bytes moved over the network so far by this stage. */
  bytesFetched: number;
}

/** Calls `fn` at most once per `intervalMs` (leading edge); `final` always goes through. */
export class ProgressThrottle {
  private last = -Infinity;

  constructor(
    private readonly fn: ((p: StageProgress) => void) | undefined,
    private readonly onError: (e: unknown) => void,
    private readonly intervalMs = 250,
  ) {}

  update(p: StageProgress): void {
    const now = performance.now();
    if (now - this.last < this.intervalMs) return;
    this.last = now;
    this.emit(p);
  }

  final(p: StageProgress): void {
    this.emit(p);
  }

  private emit(p: StageProgress): void {
    if (!this.fn) return;
    // A failing observer (say, a closed session) must not fail the stage itself.
    try {
      this.fn({ ...p });
    } catch (e) {
      this.onError(e);
    }
  }
}
