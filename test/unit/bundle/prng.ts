/**
 * Deterministic pseudo-random bytes for tests: a failing chunking test must be reproducible,
 * which crypto.randomBytes would not give us.
 */

/** `n` pseudo-random bytes from xorshift32 seeded with `seed` (non-zero). */
export function seededBytes(n: number, seed = 0x9e3779b9): Buffer {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return Buffer.from(words.buffer, 0, n);
}

/** A small seeded integer generator, for random split points and sizes. */
export function seededInts(seed = 12345): (maxExclusive: number) => number {
  let x = seed >>> 0 || 1;
  return (maxExclusive) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % maxExclusive;
  };
}
