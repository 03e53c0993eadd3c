/**
 * What serializing one Chunks.Fetch response costs on the controller, per
 * GiB of chunk data, measured in-process: the generated ts-proto path
 * (BinaryWriter grown by doubling from 128 bytes and zero-filled,
 * `finish()` slices a copy, `Buffer.from` copies again, then grpc-js copies
 * into the length-prefixed frame), against the product's hand-written codec
 * (common/src/bundle/chunk-codec.ts: one allocation, one copy of the data,
 * then the same grpc-js copy). Same bytes on the wire. The controller itself
 * reads each chunk file straight into its message, so it pays only the
 * grpc-js copy.
 */
import { encodeChunkData } from '../../common/src/bundle/chunk-codec.js';
import { ChunkData } from '../../common/src/gen/ferry/v1/common.js';

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
  const b = encodeChunkData({ digest, data });
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
    oneCopyMsPerGiB: time(() => encodeChunkData({ digest, data })),
    identical: a.equals(b),
  };
}
