/**
 * Preloaded (`node --import …/gc-meter.js`) into the controller and agents
 * the bundles suite starts: counts the main thread's garbage-collection
 * pauses and writes the running totals to $BENCH_GC_DIR/<pid>.json every
 * 200 ms, so the suite can tell what share of a process's CPU went to GC
 * during a distribution round (gcOf in kit.ts). Does nothing without
 * BENCH_GC_DIR. Pauses only: V8's concurrent marking threads are not
 * counted, so this is a floor.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, constants } from 'node:perf_hooks';

const dir = process.env['BENCH_GC_DIR'];
if (dir) {
  const totals = { ms: 0, count: 0, major: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      totals.ms += e.duration;
      totals.count++;
      if (((e as unknown as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) totals.major++;
    }
  }).observe({ entryTypes: ['gc'] });
  const file = join(dir, `${process.pid}.json`);
  const flush = () => {
    try {
      writeFileSync(file, JSON.stringify(totals));
    } catch {
      // the suite removed the directory: nothing to report to
    }
  };
  setInterval(flush, 200).unref();
  process.on('exit', flush);
}
