import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  FASTCDC_DEFAULTS,
  FastCdcChunker,
  GEAR_TABLE,
  chunkBuffer,
  chunkFile,
  chunkStream,
  type Chunk,
  type FastCdcOptions,
} from '../../../common/src/bundle/fastcdc.js';
import { BundleError, ChunkerOptionsError } from '../../../common/src/bundle/errors.js';
import { seededBytes, seededInts } from './prng.js';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const SMALL: Partial<FastCdcOptions> = { minSize: 64, avgSize: 256, maxSize: 1024 };

/**
 * Independent, deliberately naive byte-at-a-time implementation of the same algorithm.
 * The production code reads words and carries state across pushes; agreeing with this on
 * arbitrary splits is what proves those optimisations change nothing.
 */
function referenceCuts(data: Uint8Array, o: FastCdcOptions): number[] {
  const bits = Math.log2(o.avgSize);
  const maskS = (0xffffffff << (32 - (bits + o.normalization))) | 0;
  const maskL = (0xffffffff << (32 - (bits - o.normalization))) | 0;
  const lengths: number[] = [];
  let start = 0;
  while (start < data.length) {
    const remaining = data.length - start;
    let len = Math.min(remaining, o.maxSize);
    if (remaining > o.minSize) {
      let fp = 0;
      for (let n = o.minSize; n < Math.min(remaining, o.maxSize); n++) {
        fp = ((fp << 1) + GEAR_TABLE[data[start + n]!]!) | 0;
        if ((fp & (n < o.avgSize ? maskS : maskL)) === 0) {
          len = n + 1;
          break;
        }
      }
    }
    lengths.push(len);
    start += len;
  }
  return lengths;
}

function feedInPieces(data: Buffer, opts: Partial<FastCdcOptions>, pieceSize: (left: number) => number): Chunk[] {
  const c = new FastCdcChunker(opts);
  const out: Chunk[] = [];
  for (let o = 0; o < data.length; ) {
    const n = Math.max(1, Math.min(pieceSize(data.length - o), data.length - o));
    out.push(...c.push(data.subarray(o, o + n)));
    o += n;
  }
  return [...out, ...c.finish()];
}

function assertWellFormed(data: Uint8Array, chunks: Chunk[], o: Partial<FastCdcOptions> = {}): void {
  const { minSize, maxSize } = { ...FASTCDC_DEFAULTS, ...o };
  let off = 0;
  chunks.forEach((c, i) => {
    assert.equal(c.offset, off, `chunk ${i} offset`);
    assert.ok(c.length <= maxSize, `chunk ${i} longer than max`);
    if (i < chunks.length - 1) assert.ok(c.length >= minSize, `chunk ${i} shorter than min`);
    assert.equal(c.digest, sha(data.subarray(c.offset, c.offset + c.length)), `chunk ${i} digest`);
    off += c.length;
  });
  assert.equal(off, data.length, 'chunks cover the input exactly');
}

describe('bundle/fastcdc', () => {
  describe('options', () => {
    const bad: Array<[string, Partial<FastCdcOptions>]> = [
      ['min > avg', { minSize: 2 * MiB }],
      ['avg > max', { avgSize: 8 * MiB }],
      ['avg not a power of two', { avgSize: 1000 * 1000 }],
      ['min too small', { minSize: 8, avgSize: 64, maxSize: 128 }],
      ['normalization too large', { normalization: 12 }],
      ['negative', { minSize: -1 }],
      ['non-integer', { maxSize: 4 * MiB + 0.5 }],
      ['max too large', { maxSize: 2 ** 31 }],
    ];
    for (const [name, o] of bad) {
      it(`rejects ${name} with CHUNKER_INVALID_OPTIONS`, () => {
        assert.throws(() => new FastCdcChunker(o), (e: unknown) => {
          assert.ok(e instanceof ChunkerOptionsError && e instanceof BundleError);
          assert.equal(e.code, 'CHUNKER_INVALID_OPTIONS');
          assert.ok(e.hint.length > 0);
          return true;
        });
      });
    }

    it('defaults are 256 KiB / 1 MiB / 4 MiB', () => {
      assert.deepEqual(new FastCdcChunker().options, { ...FASTCDC_DEFAULTS });
      assert.equal(FASTCDC_DEFAULTS.minSize, 256 * 1024);
      assert.equal(FASTCDC_DEFAULTS.avgSize, MiB);
      assert.equal(FASTCDC_DEFAULTS.maxSize, 4 * MiB);
    });
  });

  describe('format stability', () => {
    it('gear table is pinned (changing it re-chunks every bundle)', () => {
      assert.equal(GEAR_TABLE.length, 256);
      assert.equal(new Set(GEAR_TABLE).size, 256, 'values are distinct');
      // Hash the values as text so the pin does not depend on host byte order.
      assert.equal(sha(Buffer.from(Array.from(GEAR_TABLE).join(','))), GEAR_TABLE_SHA256);
    });

    it('boundaries for a fixed input are pinned', () => {
      const lengths = chunkBuffer(seededBytes(12 * MiB, 7)).map((c) => c.length);
      assert.deepEqual(lengths, PINNED_LENGTHS);
    });
  });

  describe('chunking', () => {
    it('empty input gives no chunks', () => {
      assert.deepEqual(chunkBuffer(Buffer.alloc(0)), []);
      const c = new FastCdcChunker();
      assert.deepEqual(c.push(Buffer.alloc(0)), []);
      assert.deepEqual(c.finish(), []);
    });

    it('input below minSize is one chunk', () => {
      const data = seededBytes(1000, 3);
      assert.deepEqual(chunkBuffer(data), [{ offset: 0, length: 1000, digest: sha(data) }]);
    });

    it('chunks are contiguous, within size limits and correctly hashed', () => {
      const data = seededBytes(24 * MiB, 11);
      const chunks = chunkBuffer(data);
      assertWellFormed(data, chunks);
      assert.ok(chunks.length > 10);
    });

    it('average chunk size is near 1 MiB on random data', () => {
      const data = seededBytes(96 * MiB, 5);
      const chunks = chunkBuffer(data);
      const avg = data.length / chunks.length;
      assert.ok(avg > 0.8 * MiB && avg < 1.5 * MiB, `average ${avg}`);
    });

    it('low-entropy data is cut at maxSize and dedups to one digest', () => {
      const data = Buffer.alloc(13 * MiB);
      const chunks = chunkBuffer(data);
      assertWellFormed(data, chunks);
      assert.deepEqual(chunks.slice(0, -1).map((c) => c.length), [4 * MiB, 4 * MiB, 4 * MiB]);
      assert.equal(new Set(chunks.slice(0, -1).map((c) => c.digest)).size, 1);
    });

    it('matches a naive byte-at-a-time reference implementation', () => {
      const o = { ...FASTCDC_DEFAULTS, ...SMALL };
      for (const seed of [1, 2, 3]) {
        const data = seededBytes(200_000 + seed, seed);
        assert.deepEqual(chunkBuffer(data, SMALL).map((c) => c.length), referenceCuts(data, o));
      }
      const big = seededBytes(20 * MiB + 3, 99);
      assert.deepEqual(chunkBuffer(big).map((c) => c.length), referenceCuts(big, { ...FASTCDC_DEFAULTS }));
    });
  });

  describe('streaming determinism', () => {
    it('same chunks whether fed in one call or random-sized pieces (default sizes)', () => {
      const data = seededBytes(24 * MiB + 12345, 21);
      const whole = chunkBuffer(data);
      const rnd = seededInts(42);
      // Mix of tiny and large pieces; odd sizes also misalign the word-reading fast path.
      const pieces = feedInPieces(data, {}, () => (rnd(4) === 0 ? 1 + rnd(7) : 1 + rnd(3 * MiB)));
      assert.deepEqual(pieces, whole);
      assert.deepEqual(feedInPieces(data, {}, () => 65536), whole);
    });

    it('same chunks when fed one byte at a time (small sizes)', () => {
      const data = seededBytes(64 * 1024, 8);
      const whole = chunkBuffer(data, SMALL);
      assertWellFormed(data, whole, SMALL);
      assert.deepEqual(feedInPieces(data, SMALL, () => 1), whole);
      const rnd = seededInts(7);
      assert.deepEqual(feedInPieces(data, SMALL, () => 1 + rnd(2000)), whole);
    });

    it('same chunks from an unaligned copy of the input', () => {
      const data = seededBytes(6 * MiB, 17);
      const backing = Buffer.alloc(data.length + 3);
      data.copy(backing, 3);
      assert.deepEqual(chunkBuffer(backing.subarray(3)), chunkBuffer(data));
    });

    it('push after finish throws', () => {
      const c = new FastCdcChunker();
      c.finish();
      assert.throws(() => c.push(Buffer.from('x')));
    });
  });

  describe('shift resistance', () => {
    const data = seededBytes(48 * MiB, 1234);
    const base = chunkBuffer(data);

    /** Number of chunks of `edited` whose digest is not in `base`. */
    function changed(edited: Chunk[]): number {
      const known = new Set(base.map((c) => c.digest));
      return edited.filter((c) => !known.has(c.digest)).length;
    }

    it('inserting bytes near the start changes only the first chunk(s)', () => {
      const edited = Buffer.concat([data.subarray(0, 1000), seededBytes(100, 5), data.subarray(1000)]);
      const chunks = chunkBuffer(edited);
      assert.ok(changed(chunks) <= 2, `${changed(chunks)} chunks changed`);
      // Everything after the resynchronisation point is the same sequence of chunks, shifted by 100.
      const tail = (cs: Chunk[]) => cs.slice(2).map((c) => c.digest);
      assert.deepEqual(tail(chunks), tail(base));
      assert.equal(chunks.at(-1)!.offset, base.at(-1)!.offset + 100);
    });

    it('deleting bytes in the middle changes only the chunks around the edit', () => {
      const at = 20 * MiB + 777;
      const edited = Buffer.concat([data.subarray(0, at), data.subarray(at + 5000)]);
      const chunks = chunkBuffer(edited);
      assert.ok(changed(chunks) <= 2, `${changed(chunks)} chunks changed`);
      assert.ok(chunks.length >= base.length - 2);
    });

    it('overwriting one byte changes only the chunk(s) next to it', () => {
      const edited = Buffer.from(data);
      edited[30 * MiB] ^= 0xff;
      const n = changed(chunkBuffer(edited));
      assert.ok(n >= 1 && n <= 2, `${n} chunks changed`);
    });
  });

  describe('emitData, chunkStream, chunkFile', () => {
    it('emitData returns copies of the chunk bytes', () => {
      const data = seededBytes(5 * MiB, 31);
      const input = Buffer.from(data);
      const c = new FastCdcChunker({ emitData: true });
      const out: Chunk[] = [];
      for (let o = 0; o < input.length; o += 100_000) {
        out.push(...c.push(input.subarray(o, o + 100_000)));
      }
      input.fill(0); // a stream pool would recycle its buffers like this
      out.push(...c.finish());
      for (const ch of out) {
        assert.ok(ch.data);
        assert.equal(ch.data.length, ch.length);
        assert.ok(ch.data.equals(data.subarray(ch.offset, ch.offset + ch.length)));
      }
      assert.deepEqual(out.map(({ data: _d, ...rest }) => rest), chunkBuffer(data));
    });

    it('chunkStream yields the same chunks as chunkBuffer', async () => {
      const data = seededBytes(9 * MiB, 77);
      const pieces: Buffer[] = [];
      for (let o = 0; o < data.length; o += 333_333) pieces.push(data.subarray(o, o + 333_333));
      const got: Chunk[] = [];
      for await (const c of chunkStream(Readable.from(pieces))) got.push(c);
      assert.deepEqual(got, chunkBuffer(data));
    });

    it('chunkFile returns size, whole-file sha256 and chunks', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'ferry-cdc-'));
      try {
        const data = seededBytes(7 * MiB + 5, 13);
        await writeFile(join(dir, 'f.bin'), data);
        const r = await chunkFile(join(dir, 'f.bin'));
        assert.equal(r.size, data.length);
        assert.equal(r.sha256, sha(data));
        assert.deepEqual(r.chunks, chunkBuffer(data));
        await writeFile(join(dir, 'empty'), '');
        assert.deepEqual(await chunkFile(join(dir, 'empty')), { size: 0, sha256: sha(Buffer.alloc(0)), chunks: [] });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});

// Golden values. If these change, every existing bundle re-chunks; only update them deliberately.
const GEAR_TABLE_SHA256 = '3303a589679188b53647c0ff390666389df4da77c119cc50878dd116a3225ac2';
const PINNED_LENGTHS = [1036097, 1309339, 1099492, 1193749, 1348281, 1423969, 943420, 1579513, 1590076, 1058976];
