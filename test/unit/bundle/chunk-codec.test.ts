import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeChunkData, encodeChunkData, EncodedChunkData } from '../../../common/src/bundle/chunk-codec.js';
import { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';

const generated = (m: ChunkData) => Buffer.from(ChunkData.encode(m).finish());

describe('common/bundle/chunk-codec: ChunkData on the wire', () => {
  const digest = 'ab'.repeat(32);
  const cases: Array<[string, ChunkData]> = [
    ['empty message', { digest: '', data: Buffer.alloc(0) }],
    ['digest only', { digest, data: Buffer.alloc(0) }],
    ['data only', { digest: '', data: randomBytes(300) }],
    ['one byte', { digest, data: Buffer.from([0]) }],
    ['127 / 128 bytes (varint edge)', { digest, data: randomBytes(128) }],
    ['non-ASCII digest string', { digest: 'é✓'.repeat(70), data: randomBytes(10) }],
    ['1 MiB + odd', { digest, data: randomBytes(1024 * 1024 + 12345) }],
    ['4 MiB (chunker maximum)', { digest, data: randomBytes(4 * 1024 * 1024) }],
    ['16 MiB + 1 (4-byte length varint)', { digest, data: randomBytes(16 * 1024 * 1024 + 1) }],
  ];

  for (const [name, m] of cases) {
    it(`${name}: encodes byte-identically to ts-proto and both decoders agree`, () => {
      const ours = encodeChunkData(m);
      assert.ok(ours.equals(generated(m)), 'same bytes as the generated encoder');
      const pre = new EncodedChunkData(m.digest, m.data.length);
      m.data.copy(pre.data);
      assert.ok(encodeChunkData(pre).equals(ours), 'a pre-encoded message serializes to the same bytes');
      const frame = pre.grpcFrame();
      assert.equal(frame[0], 0, 'gRPC frame: not compressed');
      assert.equal(frame.readUInt32BE(1), ours.length, 'gRPC frame: the message length');
      assert.ok(frame.subarray(5).equals(ours), 'gRPC frame: the message, in place');
      assert.equal(frame.buffer, pre.wire.buffer, 'framed without a copy');
      const a = decodeChunkData(ours);
      const b = ChunkData.decode(ours);
      assert.equal(a.digest, b.digest);
      assert.ok(a.data.equals(b.data));
      assert.equal(a.digest, m.digest);
      assert.ok(a.data.equals(m.data));
    });
  }

  it('decodes what the generated encoder writes with unknown fields, repeated fields, and fields out of order', () => {
    const unknownVarint = Buffer.from([0x18, 0x96, 0x01]); // field 3, varint 150
    const d1 = generated({ digest: 'x', data: Buffer.from('old') });
    const d2 = generated({ digest: 'y', data: Buffer.from('new') });
    const dataFirst = Buffer.concat([generated({ digest: '', data: Buffer.from('bytes') }), generated({ digest, data: Buffer.alloc(0) })]);
    for (const buf of [Buffer.concat([unknownVarint, d1]), Buffer.concat([d1, d2]), dataFirst]) {
      const a = decodeChunkData(buf);
      const b = ChunkData.decode(buf);
      assert.equal(a.digest, b.digest);
      assert.ok(a.data.equals(b.data));
    }
  });

  it('a truncated message fails like the generated decoder', () => {
    const full = generated({ digest, data: randomBytes(1000) });
    const cut = full.subarray(0, full.length - 10);
    assert.throws(() => ChunkData.decode(cut));
    assert.throws(() => decodeChunkData(cut));
  });

  it('decoding does not copy the data (a view of the received buffer)', () => {
    const buf = generated({ digest, data: randomBytes(4096) });
    const m = decodeChunkData(buf);
    assert.equal(m.data.buffer, buf.buffer);
  });
});
