import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { HashThread, SMALL_BYTES } from '../../../agent/src/bundles/hash-thread.js';

const sha = (...bs: Buffer[]) => bs.reduce((h, b) => h.update(b), createHash('sha256')).digest('hex');

describe('agent/bundles: hash thread', () => {
  let t: HashThread;
  beforeEach(() => { t = new HashThread(); });
  afterEach(async () => { await t.close(); });

  it('chunk(): a given buffer of its own travels to the worker and back (same bytes); others are copied and left usable', async () => {
    const own = Buffer.from(randomBytes(SMALL_BYTES * 4)); // owns its allocation
    const expected = sha(own);
    const copyOfBytes = Buffer.from(own);
    const r = await t.chunk(own, true);
    assert.equal(r.hex, expected);
    assert.equal(own.buffer.byteLength, 0, 'the given buffer was transferred, not copied');
    assert.deepEqual(r.data, copyOfBytes);

    const kept = Buffer.from(randomBytes(SMALL_BYTES * 2));
    const r2 = await t.chunk(kept, false);
    assert.equal(r2.hex, sha(kept));
    assert.equal(r2.data, kept, 'not given: the caller keeps its buffer');

    const small = randomBytes(100);
    assert.equal((await t.chunk(small, true)).hex, sha(small), 'small chunks are hashed in place');
  });

  it('chunk(): a view into a larger allocation is copied even when given, so the rest of the allocation stays intact', async () => {
    const big = Buffer.from(randomBytes(SMALL_BYTES * 8));
    const view = big.subarray(SMALL_BYTES, SMALL_BYTES * 3);
    const r = await t.chunk(view, true);
    assert.equal(r.hex, sha(view));
    assert.equal(big.buffer.byteLength, SMALL_BYTES * 8);
  });

  it('a worker that died rejects the calls pending on it, and the next call starts a new one', async () => {
    const pending = t.chunk(Buffer.from(randomBytes(SMALL_BYTES * 64)), false);
    await t.close();
    await assert.rejects(pending);
    const b = Buffer.from(randomBytes(SMALL_BYTES * 2));
    assert.equal((await t.chunk(b, false)).hex, sha(b));
  });
});
