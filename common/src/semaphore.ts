/**
 * A counting semaphore whose waiters can give up: work that would finish
 * after its caller stopped waiting is better never started.
 */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /** Waits for a slot until `deadline` (ms since epoch); false when it passed first. */
  async acquire(deadline = Number.POSITIVE_INFINITY): Promise<boolean> {
    if (this.active < this.limit) {
      this.active++;
      return true;
    }
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const grant = () => {
        clearTimeout(timer);
        this.active++;
        resolve(true);
      };
      this.waiters.push(grant);
      if (Number.isFinite(deadline)) {
        timer = setTimeout(() => {
          const i = this.waiters.indexOf(grant);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(false);
        }, Math.max(0, deadline - Date.now()));
      }
    });
  }

  release(): void {
    this.active--;
    this.waiters.shift()?.();
  }
}
