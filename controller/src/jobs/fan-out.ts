/**
 * How many hosts of one operator run (exec or plan) have a job at once: starts
 * `begin` for targets in order, at most `limit` unfinished at a time (0: no
 * limit), and resolves when every started target has called its `done` and
 * no target is left (or `stopped()` says to start no more). `begin` returns
 * false when it did not start the target (e.g. the host is offline).
 */
export function fanOut<T>(targets: readonly T[], limit: number, begin: (t: T, done: () => void) => boolean, stopped: () => boolean = () => false): Promise<void> {
  const queue = [...targets];
  const max = limit > 0 ? limit : Number.POSITIVE_INFINITY;
  let running = 0;
  return new Promise<void>((resolve) => {
    const next = () => {
      while (running < max && queue.length > 0 && !stopped()) {
        const t = queue.shift()!;
        let finished = false;
        running++;
        const started = begin(t, () => {
          if (finished) return;
          finished = true;
          running--;
          next();
        });
        if (!started && !finished) {
          finished = true;
          running--;
        }
      }
      if (running === 0 && (queue.length === 0 || stopped())) resolve();
    };
    next();
  });
}
