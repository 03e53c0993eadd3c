/**
 * Waits for `work`, but not past `until` (ms since epoch). Resolves true when
 * the work finished in time, false when the deadline came first; the work is
 * left to end by itself (its rejection is swallowed: nobody is waiting for it).
 * Shutdown paths use it so one stuck step cannot hold a process that was told
 * to stop.
 */
export async function untilDeadline(work: Promise<unknown> | undefined, until: number): Promise<boolean> {
  if (!work) return true;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, until - Date.now()));
    timer.unref();
  });
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}
