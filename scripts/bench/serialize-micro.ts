/**
 * What serializing one Chunks.Fetch response costs on the controller, per
 * GiB of chunk data, measured in-process: the generated ts-proto path that
 * grpc-js runs today (BinaryWriter grown by doubling from 128 bytes and
 * zero-filled, `finish()` slices a copy, `Buffer.from` copies again, then
 * grpc-js copies into the length-prefixed frame), against a hand-written
 * serializer (a small header + the data in one Buffer.concat, then the
 * same grpc-js copy). Same bytes on the wire.
 */
import { ChunkData } from '../../common/src/gen/ferry/v1/common.js';

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** ChunkData as protobuf with one copy of `data`: field 1 (digest), field 2 (data). */
export function encodeChunkDataOneCopy(digest: string, data: Buffer): Buffer {
  const d = Buffer.from(digest, 'utf8');
  const head = Buffer.from([10, ...varint(d.length), ...d, 18, ...varint(data.length)]);
  return Buffer.concat([head, data], head.length + data.length);
}

/** grpc-js's server-side framing: 5-byte prefix + a copy of the message. */
function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(msg.length + 5);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, 5);
  return out;
}

export interface SerializeResult { generatedMsPerGiB: number; oneCopyMsPerGiB: number; identical: boolean }

/** Serializes `totalBytes` worth of `chunkBytes` chunks both ways; best of 3 each. */
export function serializeMicro(totalBytes: number, chunkBytes = 1024 * 1024 + 12345): SerializeResult {
  const data = Buffer.alloc(chunkBytes, 7);
  const digest = 'ab'.repeat(32);
  const n = Math.max(1, Math.round(totalBytes / chunkBytes));
  const gib = (n * chunkBytes) / 2 ** 30;
  const a = Buffer.from(ChunkData.encode({ digest, data }).finish());
  const b = encodeChunkDataOneCopy(digest, data);
  const time = (fn: () => Buffer) => {
    let best = Number.POSITIVE_INFINITY;
    for (let t = 0; t < 3; t++) {
      const t0 = performance.now();
      let sink = 0;
      for (let i = 0; i < n; i++) sink += frame(fn()).length;
      if (sink === 0) throw new Error('nothing serialized');
      best = Math.min(best, performance.now() - t0);
    }
    return best / gib;
  };
  return {
    generatedMsPerGiB: time(() => Buffer.from(ChunkData.encode({ digest, data }).finish())),
    oneCopyMsPerGiB: time(() => encodeChunkDataOneCopy(digest, data)),
    identical: a.equals(b),
  };
}
