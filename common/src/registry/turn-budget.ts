/**
 * Bytes that HTTP bodies together may hand to TLS in one turn of the event
 * loop; writes past that wait for the next turn.
 *
 * Why: libuv accepts one new connection per turn of the loop (strace of
 * the controller: one accept4 between two epoll_pwait calls), and every
 * body whose socket drained in a turn encrypts and writes its next chunk
 * (1 to 4 MiB) in that same turn. With 8 containerd clients pulling a 1 GiB
 * image (80 connections, on this 2-core machine beside the clients) a turn
 * took 0.2 to 0.7 s, 40 to 50 new connections waited in the accept queue,
 * and handshakes took up to 12 s: containerd gave up after its 10 s TLS
 * handshake timeout and the pull failed. A bounded turn keeps accepting
 * (and every other timer and callback of the process) moving under load;
 * with one client a chunk never waits.
 */

/** See module comment. */
export class TurnBudget {
  private used = 0;
  private readonly waiting: Array<{ bytes: number; go: () => void }> = [];
  private scheduled = false;

  /**
   * `perTurn`: bytes granted per turn (a write that starts under it is
   * granted whole). `nextTurn`: runs a function at the end of this turn or
   * the next (setImmediate: a callback queued while immediates run waits
   * for the next turn's poll, where connections are accepted).
   */
  constructor(private readonly perTurn: number, private readonly nextTurn: (fn: () => void) => void = setImmediate) {}

  /**
   * Asks to write `bytes` now: undefined when granted (the common case, no
   * await needed), else a promise that resolves in a later turn, in the
   * order asked.
   */
  take(bytes: number): Promise<void> | undefined {
    this.schedule();
    if (this.waiting.length === 0 && this.used < this.perTurn) {
      this.used += bytes;
      return undefined;
    }
    return new Promise<void>((go) => this.waiting.push({ bytes, go }));
  }

  /** Writers waiting for a later turn (for tests). */
  get queued(): number {
    return this.waiting.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.nextTurn(() => this.turn());
  }

  /** A new turn: the count starts over and the first waiters are let through. */
  private turn(): void {
    this.scheduled = false;
    this.used = 0;
    while (this.waiting.length > 0 && this.used < this.perTurn) {
      const w = this.waiting.shift()!;
      this.used += w.bytes;
      w.go();
    }
    if (this.used > 0) this.schedule(); // what was let through counts against the turn it is written in
  }
}

/**
 * The process's one budget for registry and files bodies (the event loop it
 * protects is the process's): 4 MiB, about 8 ms of AES and copying here.
 */
export const BODY_TURN_BUDGET = new TurnBudget(4 << 20);
