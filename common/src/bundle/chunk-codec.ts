/**
 * Hand-written protobuf codec for `ferry.v1.ChunkData` (field 1 `digest`
 * string, field 2 `data` bytes), the message that carries bundle bytes on
 * `Chunks.Fetch` and `Admin.UploadChunks`.
 *
 * Why not the generated ts-proto code: it grows a BinaryWriter by doubling
 * from 128 bytes (zero-filled), `finish()` copies, `Buffer.from` copies again,
 * and decoding copies the bytes out of the received message once more. For
 * 1 MiB chunks that is most of the controller's serialization cost. This
 * codec writes exactly what ts-proto writes (same field order, same omission
 * of empty fields: byte-identical, tested against the generated code), in one
 * allocation; decoding returns a view of the received buffer, no copy.
 *
 * {@link EncodedChunkData} goes one step further for the controller: the
 * message buffer is allocated first and the chunk file is read straight into
 * its data region, so serializing is free.
 */
import { ChunkData } from '../gen/ferry/v1/common.js';

const TAG_DIGEST = 10; // field 1, wire type 2
const TAG_DATA = 18; // field 2, wire type 2

function varintLength(n: number): number {
  let len = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n > 0x7f) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/**
 * A ChunkData whose wire encoding already exists: `data` is a view of
 * `wire`, so filling `data` (e.g. by reading a file into it) fills the
 * message. The serializer returns `wire` as is.
 */
export class EncodedChunkData implements ChunkData {
  /**
   * The allocation behind the message: {@link GRPC_FRAME_HEADER} bytes of
   * room for gRPC's message header, then {@link wire}. What a buffer pool
   * keeps and hands back as `into`.
   */
  readonly framed: Buffer;
  /** The complete encoded message. */
  readonly wire: Buffer;
  /** The data region of {@link wire}, `dataLength` bytes to be filled by the caller. */
  readonly data: Buffer;

  /**
   * Lays out the message for `digest` and `dataLength` bytes of data
   * (uninitialised), at the start of `into` if it is large enough (a buffer
   * the caller reuses once the transport is done with it), else in a new
   * allocation.
   */
  constructor(readonly digest: string, dataLength: number, into?: Buffer) {
    const d = Buffer.byteLength(digest, 'utf8');
    const head = (d > 0 ? 1 + varintLength(d) + d : 0) + (dataLength > 0 ? 1 + varintLength(dataLength) : 0);
    const size = GRPC_FRAME_HEADER + head + dataLength;
    this.framed = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    this.wire = this.framed.subarray(GRPC_FRAME_HEADER);
    let pos = 0;
    if (d > 0) {
      this.wire[pos++] = TAG_DIGEST;
      pos = writeVarint(this.wire, pos, d);
      pos += this.wire.write(digest, pos, 'utf8');
    }
    if (dataLength > 0) {
      this.wire[pos++] = TAG_DATA;
      pos = writeVarint(this.wire, pos, dataLength);
    }
    this.data = this.wire.subarray(pos);
  }

  /**
   * The message as a gRPC length-prefixed frame (uncompressed), written in
   * place in front of {@link wire}: what grpc-js would otherwise build by
   * copying the message into a fresh buffer (see grpc-chunks.ts).
   */
  grpcFrame(): Buffer {
    this.framed[0] = 0; // not compressed
    this.framed.writeUInt32BE(this.wire.length, 1);
    return this.framed;
  }
}

/** gRPC's per-message header: a compressed flag and a 4-byte big-endian length. */
export const GRPC_FRAME_HEADER = 5;

/** Encode a ChunkData: byte-identical to `ChunkData.encode(m).finish()`, one allocation and one copy of the data. */
export function encodeChunkData(m: ChunkData): Buffer {
  if (m instanceof EncodedChunkData) return m.wire;
  const out = new EncodedChunkData(m.digest, m.data.length);
  out.data.set(m.data);
  return out.wire;
}

/**
 * Decode a ChunkData. `data` is a view of `buf` (no copy): callers own `buf`
 * (grpc-js hands each message its own buffer). Anything beyond the two known
 * fields in their usual shape — unknown fields, groups, truncation — goes
 * through the generated decoder, so the result (or the error) is the same.
 */
export function decodeChunkData(buf: Buffer): ChunkData {
  let digest = '';
  let data: Buffer | undefined;
  let pos = 0;
  while (pos < buf.length) {
    const tag = buf[pos++];
    if (tag !== TAG_DIGEST && tag !== TAG_DATA) return ChunkData.decode(buf);
    let len = 0;
    let shift = 1;
    for (;;) {
      if (pos >= buf.length || shift > 2 ** 28) return ChunkData.decode(buf);
      const b = buf[pos++]!;
      len += (b & 0x7f) * shift;
      shift *= 128;
      if (b < 0x80) break;
    }
    const end = pos + len;
    if (end > buf.length) return ChunkData.decode(buf); // truncated: let the generated code report it
    if (tag === TAG_DIGEST) digest = buf.toString('utf8', pos, end);
    else data = buf.subarray(pos, end);
    pos = end;
  }
  return { digest, data: data ?? Buffer.alloc(0) };
}
