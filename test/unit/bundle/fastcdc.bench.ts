/**
 * Manual throughput benchmark (not a test, no assertions):
 *   npx tsc -p tsconfig.json && node build/test/unit/bundle/fastcdc.bench.js [MiB]
 * Compares the chunker (boundaries + per-chunk sha256) with plain sha256 over the same data.
 */
import { createHash, randomBytes } from 'node:crypto';
import { FastCdcChunker } from '../../../common/src/bundle/fastcdc.js';

const mib = Number(process.argv[2] ?? 256);
const data = randomBytes(mib * 1024 * 1024);
const piece = 1 << 20; // what chunkFile reads at a time

function time(label: string, fn: () => void): number {
  fn(); // warm-up so the JIT has compiled the hot loop
  const runs: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    runs.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const best = Math.min(...runs);
  console.log(`${label.padEnd(40)} ${(mib / best).toFixed(0).padStart(6)} MiB/s  (best of 3, ${best.toFixed(3)} s)`);
  return best;
}

let nChunks = 0;
const tSha = time('sha256 only (node crypto)', () => {
  const h = createHash('sha256');
  for (let o = 0; o < data.length; o += piece) h.update(data.subarray(o, o + piece));
  h.digest();
});
const tCdc = time('fastcdc chunker (boundaries + sha256)', () => {
  const c = new FastCdcChunker();
  nChunks = 0;
  for (let o = 0; o < data.length; o += piece) nChunks += c.push(data.subarray(o, o + piece)).length;
  nChunks += c.finish().length;
});
time('fastcdc chunker, emitData', () => {
  const c = new FastCdcChunker({ emitData: true });
  for (let o = 0; o < data.length; o += piece) c.push(data.subarray(o, o + piece));
  c.finish();
});
// The chunker does the same sha256 work plus the boundary search, so the difference estimates
// the boundary search alone.
console.log(`${'=> boundary search alone (derived)'.padEnd(40)} ${(mib / (tCdc - tSha)).toFixed(0).padStart(6)} MiB/s`);
console.log(`${nChunks} chunks, average ${(data.length / nChunks / 1024).toFixed(0)} KiB`);
