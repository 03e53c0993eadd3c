/**
 * Time as the rollout scheduler and the agent's upgrade watcher see it. Production uses the system clock;
 * tests pass a clock they advance by hand, so an offline timeout of five
 * minutes or a wait between waves is tested without waiting for it.
 */

/** A scheduled callback; `cancel` stops it (idempotent). */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): Timer;
  /** Calls `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): Timer;
  /** Resolves `ms` from now (at once when `signal` aborts). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function sleepWith(clock: Pick<Clock, 'after'>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = clock.after(ms, () => {
      signal?.removeEventListener('abort', stop);
      resolve();
    });
    const stop = () => {
      t.cancel();
      resolve();
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/** The real clock. Its timers do not keep the process alive (the controller's servers do). */
export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
  sleep(ms, signal) {
    return sleepWith(systemClock, ms, signal);
  },
};

/**
 * A clock that moves only when told to (`advance`). Timers fire in time
 * order, each seeing `now()` at its due time. For tests; it lives here so
 * the interface and its test double cannot drift apart.
 */
export class ManualClock implements Clock {
  private timers: Array<{ at: number; every: number; fn: () => void; id: number }> = [];
  private nextId = 1;

  constructor(private t = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    return this.add(ms, 0, fn);
  }

  every(ms: number, fn: () => void): Timer {
    return this.add(ms, Math.max(1, ms), fn);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepWith(this, ms, signal);
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      if (due.every) due.at += due.every;
      else this.timers = this.timers.filter((x) => x !== due);
      due.fn();
    }
    this.t = end;
  }

  /** Timers still scheduled (a test can check that nothing is left waiting). */
  pending(): number {
    return this.timers.length;
  }

  private add(ms: number, every: number, fn: () => void): Timer {
    const timer = { at: this.t + Math.max(0, ms), every, fn, id: this.nextId++ };
    this.timers.push(timer);
    return { cancel: () => { this.timers = this.timers.filter((x) => x !== timer); } };
  }
}
