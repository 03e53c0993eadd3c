/**
 * glibc malloc settings for the processes that move bundle bytes (the
 * controller serving Chunks.Fetch, the agent staging).
 *
 * Why: every chunk on the wire passes through a few 1 MiB Buffers (grpc-js
 * frames each message in a fresh one). Above glibc's mmap threshold
 * (128 KiB by default, adaptive) each of them is its own mmap: the kernel
 * hands out zeroed pages and takes them back at free, a page fault per
 * 4 KiB, on both sides, for every chunk. Freed heap memory is also trimmed
 * back to the kernel as soon as 128 KiB sit free at the top. Keeping chunk-
 * sized blocks on the heap and the heap from shrinking turns that into
 * plain reuse (measured in bench-results/bundles.md).
 *
 * These must be in the environment before the process starts (glibc reads
 * them once, at its first malloc), so they go where deployments start the
 * process: the agent's systemd unit (`Environment=` lines,
 * agent/src/service/unit-file.ts) and the controller's unit (README).
 * The values bound what is kept: blocks up to 32 MiB come from the heap,
 * up to 64 MiB of free heap is kept before trimming, and the heap grows in
 * 16 MiB steps; an idle agent's RSS is unchanged (nothing is allocated).
 */

/** Name → value, for `Environment=` lines and child processes. */
export const MALLOC_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(64 * 1024 * 1024),
  MALLOC_TOP_PAD_: String(16 * 1024 * 1024),
});

/** The settings missing from `env` (what a process started without them lacks). */
export function missingMallocEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.keys(MALLOC_ENV).filter((k) => env[k] === undefined);
}

/** `env` with the malloc settings added where it does not set them itself. */
export function withMallocEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...MALLOC_ENV, ...env };
}
