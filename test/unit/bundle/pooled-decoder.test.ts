import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { StreamDecoder } from '@grpc/grpc-js/build/src/stream-decoder.js';
import { BufferPool } from '../../../common/src/bundle/buffer-pool.js';
import { decodeLargeMessagesInto } from '../../../common/src/grpc-chunks.js';

/** gRPC's length-prefixed framing: flag byte, 4-byte big-endian length, message. */
function frame(msg: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

/** `wire` cut into pieces of the given sizes (cycled), as HTTP/2 DATA frames arrive. */
function pieces(wire: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, k = 0; at < wire.length; k++) {
    const n = sizes[k % sizes.length]!;
    out.push(Buffer.from(wire.subarray(at, at + n))); // own copies, like received frames
    at += n;
  }
  return out;
}

function decodeAll(wire: Buffer, sizes: number[], max = -1): Buffer[] {
  const d = new StreamDecoder(max);
  return pieces(wire, sizes).flatMap((p) => d.write(p));
}

describe('common/bundle/buffer-pool: lending', () => {
  it('takes back only what it lent, through any view of it, and lends it again', () => {
    const pool = new BufferPool(2);
    const a = pool.lend(300_000);
    assert.equal(a.length, 300_000);
    pool.giveBack(Buffer.alloc(300_000)); // not lent by this pool: ignored
    assert.equal(pool.take(1), undefined);
    pool.giveBack(a.subarray(17, 40)); // a view is enough
    const b = pool.lend(200_000);
    assert.ok(b.buffer === a.buffer, 'the lent allocation was reused');
    pool.giveBack(b);
    pool.giveBack(b); // twice: the second is ignored
    assert.ok(pool.take(1));
    assert.equal(pool.take(1), undefined, 'kept once, not twice');
  });
});

describe('common/grpc-chunks: received messages assembled in pooled buffers', () => {
  const pool = new BufferPool(4);
  // Process-wide: the latest pool installed is used (an agent test in this process may have installed its own).
  beforeEach(() => {
    assert.equal(decodeLargeMessagesInto(pool, 64 * 1024), true, 'grpc-js StreamDecoder is where it is expected');
  });

  const messages = [randomBytes(1024 * 1024 + 7), Buffer.alloc(0), randomBytes(100), randomBytes(64 * 1024 - 5), randomBytes(300_000)];
  const wire = Buffer.concat(messages.map(frame));

  for (const sizes of [[wire.length], [1], [3, 16_384], [5], [16_384], [7, 1, 65_536, 2]]) {
    it(`yields the same framed messages as grpc-js for pieces of ${sizes.join('/')} bytes`, () => {
      const got = decodeAll(wire, sizes);
      assert.equal(got.length, messages.length);
      got.forEach((m, i) => assert.ok(m.equals(frame(messages[i]!)), `message ${i}`));
    });
  }

  it('lends large messages from the pool and reuses them once given back; small ones are not lent', () => {
    const [big1] = decodeAll(frame(randomBytes(500_000)), [16_384]);
    const [small] = decodeAll(frame(randomBytes(1000)), [16_384]);
    pool.giveBack(small!); // not lent: ignored
    pool.giveBack(big1!.subarray(5)); // what a consumer holds: the message without its frame header
    const msg = randomBytes(400_000);
    const [big2] = decodeAll(frame(msg), [16_384]);
    assert.ok(big2!.buffer === big1!.buffer, 'the given-back buffer was reused');
    assert.ok(big2!.equals(frame(msg)));
    const [big3] = decodeAll(frame(randomBytes(400_000)), [16_384]);
    assert.ok(big3!.buffer !== big2!.buffer, 'a buffer still in use is never lent twice');
  });

  it('still refuses a message over the limit, before allocating it', () => {
    assert.throws(() => decodeAll(frame(randomBytes(200_000)), [16_384], 100_000), /larger than max \(200000 vs 100000\)/);
  });
});
