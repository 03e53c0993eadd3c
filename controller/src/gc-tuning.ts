/**
 * How far V8 lets the controller's old generation grow before its next
 * major collection, set once at start (`ferry controller start`).
 *
 * Why: V8 sets the next limit at about twice the live heap (~20 MB here),
 * and counts external memory against it. Node's TLS counts the records it
 * queues for a connection as external memory (1 to 3 MiB per registry
 * connection serving chunks), so pulls that open and close many
 * connections at once (skopeo and containerd open one per blob; 8 clients
 * were ~80) kept starting major collections: 10 per 8 GiB served, perf put
 * V8's marking at 4-12% of the controller's CPU. A growing factor of 5
 * (V8's --heap-growing-percent=400) made that one or two (--trace-gc, one
 * pull by 8 containerd clients: 22 major collections, 6 with it); measured by hand
 * on the same machine, interleaved, 8 containerd clients: 7% less
 * controller CPU and 7% shorter pulls (8 skopeo clients: 4% less CPU).
 *
 * The price is garbage kept longer: up to five times the live heap before
 * a collection (V8 still caps it halfway to the heap's maximum). Set only
 * when the operator has not chosen a factor themselves (NODE_OPTIONS or
 * node's own flags).
 */
import { setFlagsFromString } from 'node:v8';

/** V8's --heap-growing-percent for the controller (growth factor 1 + p/100). */
export const CONTROLLER_HEAP_GROWING_PERCENT = 400;

/**
 * Applies {@link CONTROLLER_HEAP_GROWING_PERCENT} unless this process was
 * started with a factor of its own; returns what applies. `setFlag` is V8's
 * (tests pass their own, so the test process keeps its GC as it is).
 */
export function tuneControllerGc(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions = process.env['NODE_OPTIONS'] ?? '',
  setFlag: (flag: string) => void = setFlagsFromString,
): string {
  const own = [...execArgv, ...nodeOptions.split(/\s+/)].find((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a));
  if (own) return own;
  const flag = `--heap-growing-percent=${CONTROLLER_HEAP_GROWING_PERCENT}`;
  setFlag(flag);
  return flag;
}
