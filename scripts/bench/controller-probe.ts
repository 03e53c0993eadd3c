/**
 * Preloaded into the benchmarked controller process
 * (`node --expose-gc --import build/scripts/bench/controller-probe.js bin/ferry.js controller start ...`)
 * so the benchmark can force a garbage collection, read the V8 heap figures
 * and take heap snapshots there. It adds an IPC channel and nothing else; the
 * controller itself runs unchanged. Without the parent it stops the controller.
 */
import { getHeapStatistics, writeHeapSnapshot } from 'node:v8';
import { procMem, serveRpc, sleep } from './lib.js';

const gc = (globalThis as { gc?: () => void }).gc;

async function collect(): Promise<void> {
  if (!gc) throw new Error('the controller was not started with --expose-gc');
  // Two rounds with turns of the event loop between them, so finalizers and
  // weak callbacks of the first round can free what the second one collects.
  for (let i = 0; i < 2; i++) {
    gc();
    await sleep(50);
  }
}

function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

serveRpc({
  async mem(args: { gc?: boolean }) {
    if (args.gc) await collect();
    const mu = process.memoryUsage();
    const hs = getHeapStatistics();
    return {
      proc: procMem(process.pid),
      rss: mu.rss, heapTotal: mu.heapTotal, heapUsed: mu.heapUsed, external: mu.external, arrayBuffers: mu.arrayBuffers,
      mallocedMemory: hs.malloced_memory, totalPhysicalSize: hs.total_physical_size,
      resources: resources(),
    };
  },
  async snapshot(args: { path: string }) {
    await collect();
    return writeHeapSnapshot(args.path);
  },
}, () => {
  // The benchmark is gone: stop like an operator would, and make sure of it.
  process.kill(process.pid, 'SIGTERM');
  setTimeout(() => process.exit(1), 15_000).unref();
});

// The channel must not keep the controller alive once it has stopped.
(process.channel as unknown as { unref?: () => void } | undefined)?.unref?.();
