import { createReadStream } from 'node:fs';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { BackupSealer } from './backup-crypto.js';

/**
 * The plaintext inside a backup: a sequence of files, each a record
 *   type u8 (1 = file) | path length u16 | path | mode u32 | size u64 | bytes
 * and one end record (type 2). Paths are relative, '/'-separated; the
 * reader refuses anything that could leave the restore directory.
 */

const FILE = 1;
const END = 2;

/** Adds files to a sealed backup. */
export class ArchiveWriter {
  constructor(private readonly out: BackupSealer) {}

  private async head(path: string, mode: number, size: number): Promise<void> {
    const p = Buffer.from(path, 'utf8');
    const h = Buffer.alloc(1 + 2 + p.length + 4 + 8);
    h[0] = FILE;
    h.writeUInt16BE(p.length, 1);
    p.copy(h, 3);
    h.writeUInt32BE(mode & 0o7777, 3 + p.length);
    h.writeBigUInt64BE(BigInt(size), 7 + p.length);
    await this.out.push(h);
  }

  async addBytes(path: string, data: Buffer, mode = 0o600): Promise<void> {
    await this.head(path, mode, data.length);
    await this.out.push(data);
  }

  /** Streams a file of `size` bytes (its size when listed; a file that changes meanwhile is refused). */
  async addFile(path: string, from: string, size: number, mode: number): Promise<void> {
    await this.head(path, mode, size);
    let n = 0;
    for await (const chunk of createReadStream(from)) {
      n += (chunk as Buffer).length;
      if (n > size) break;
      await this.out.push(chunk as Buffer);
    }
    if (n !== size) {
      throw new FerryError(ErrorCode.Internal, `${from} changed size while it was being backed up (${size} → ${n} bytes)`, 'run the backup again');
    }
  }

  async end(): Promise<void> {
    await this.out.push(Buffer.from([END]));
    await this.out.finish();
  }
}

/** One file read from a backup; `read` must be consumed (or skipped) before the next. */
export interface ArchiveEntry {
  path: string;
  mode: number;
  size: number;
  /** The bytes, in pieces as they are decrypted. */
  chunks(): AsyncGenerator<Buffer>;
}

/** A path that stays inside the restore directory: relative, no '.', '..' or empty parts. */
function safePath(p: string): boolean {
  return p.length > 0 && !p.startsWith('/') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..') && !p.includes('\0');
}

/** Reads the records from the decrypted segments. */
export async function* readArchive(segments: AsyncGenerator<Buffer>, file: string): AsyncGenerator<ArchiveEntry> {
  let buf: Buffer = Buffer.alloc(0);
  const fill = async (n: number): Promise<boolean> => {
    while (buf.length < n) {
      const next = await segments.next();
      if (next.done) return false;
      buf = buf.length ? Buffer.concat([buf, next.value]) : next.value;
    }
    return true;
  };
  const bad = (what: string) => new FerryError(ErrorCode.BackupDamaged, `${file}: ${what}`, 'use another copy of the backup; nothing was restored from this one');
  for (;;) {
    if (!(await fill(1))) throw bad('the archive inside ends without its end record');
    const type = buf[0];
    if (type === END) {
      buf = buf.subarray(1);
      if (buf.length > 0 || !(await segments.next()).done) throw bad('data after the archive\'s end record');
      return;
    }
    if (type !== FILE || !(await fill(3))) throw bad('an archive record is damaged');
    const pl = buf.readUInt16BE(1);
    if (!(await fill(3 + pl + 12))) throw bad('an archive record is cut short');
    const path = buf.subarray(3, 3 + pl).toString('utf8');
    const mode = buf.readUInt32BE(3 + pl);
    const size = Number(buf.readBigUInt64BE(7 + pl));
    if (!safePath(path)) throw bad(`the archive holds the path "${path}", which would leave the data directory`);
    buf = buf.subarray(3 + pl + 12);
    let left = size;
    let consumed = false;
    const chunks = async function* (): AsyncGenerator<Buffer> {
      consumed = true;
      while (left > 0) {
        if (buf.length === 0 && !(await fill(1))) throw bad(`${path} is cut short inside the archive`);
        const take = Math.min(left, buf.length);
        const piece = buf.subarray(0, take);
        buf = buf.subarray(take);
        left -= take;
        yield piece;
      }
    };
    yield { path, mode, size, chunks };
    if (!consumed) for await (const _ of chunks()) { /* skipped */ }
    else if (left > 0) throw bad(`${path} was not read to its end`);
  }
}
