/**
 * Minimal streaming tar reader: ustar and v7, pax extended headers (`x`, Solaris `X`; `g` is
 * parsed and ignored), GNU long names (`L`/`K`), old-GNU sparse entries (stored fragments are
 * reported as the data, not expanded), base-256 sizes. Push-based and allocation-light, so
 * multi-GiB image tars can be inspected straight from a file stream without touching the disk.
 *
 * Strict on purpose: bad checksums, truncation, unsafe names and escaping links are errors,
 * never warnings, because the inputs come from outside the trust boundary.
 */
import { TarMalformedError, TarTruncatedError } from './errors.js';
import { normalizeEntryName, resolveLinkTarget } from './tar-paths.js';

const BLOCK = 512;
/** Cap on pax / GNU long-name payloads: they are buffered, so they must not be a memory bomb. */
const MAX_META = 1 << 20;

/** Entry kinds the reader distinguishes. `other` covers devices, fifos and unknown typeflags. */
export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

/** A tar entry header after pax / GNU long-name records have been applied and paths checked. */
export interface TarEntry {
  /** Normalised name (no `./`, no trailing `/`; the root is `.`). */
  name: string;
  type: TarEntryType;
  /** Raw typeflag character (`'0'`, `'5'`, ...). */
  typeflag: string;
  /** Bytes of data that follow (0 for header-only types). */
  size: number;
  mode: number;
  /** For links: the target as written in the archive. */
  linkname: string;
  /** For links: the target resolved to a normalised path inside the archive. */
  linkTarget?: string;
  /**
   * Byte offset in the archive where this entry's data starts (its `size` bytes follow
   * contiguously, except for sparse entries): the registry serves image blobs by this range.
   */
  dataOffset: number;
}

/** Receives one entry's data. Chunks may be views into the caller's buffers: copy to retain. */
export interface TarEntrySink {
  data(chunk: Buffer): void;
  end(): void;
}

/** Called per entry; return a sink to receive the data, or undefined to skip it. */
export type TarEntryHandler = (entry: TarEntry) => TarEntrySink | undefined;

type State = 'header' | 'data' | 'meta' | 'padding' | 'zero' | 'done';

interface Pending {
  path?: string;
  linkpath?: string;
  size?: number;
}

const TYPES: Record<string, TarEntryType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '5': 'directory' };
/** Types whose size field never announces data (matches GNU tar and Go's archive/tar). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

/** See module comment. Call {@link push} with consecutive pieces of the archive, then {@link end}. */
export class TarReader {
  private state: State = 'header';
  private readonly hdr = Buffer.alloc(BLOCK);
  private hdrFill = 0;
  private remaining = 0; // data bytes left in the current entry / meta record
  private padding = 0; // bytes of block padding left after it
  private sink: TarEntrySink | undefined;
  private metaType = '';
  private meta: Buffer[] = [];
  private pending: Pending = {};
  private offset = 0;
  /** Old-GNU sparse entry waiting for its extension headers to pass (they precede the data). */
  private sparse: TarEntry | undefined;

  constructor(private readonly onEntry: TarEntryHandler) {}

  /** Feed the next piece of the archive. Throws typed errors from `./errors.js`. */
  push(input: Uint8Array): void {
    const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    let pos = 0;
    while (pos < buf.length && this.state !== 'done') {
      if (this.state === 'header' || this.state === 'zero') {
        const n = Math.min(BLOCK - this.hdrFill, buf.length - pos);
        buf.copy(this.hdr, this.hdrFill, pos, pos + n);
        this.hdrFill += n;
        pos += n;
        if (this.hdrFill === BLOCK) {
          this.hdrFill = 0;
          this.onBlock();
          this.offset += BLOCK;
        }
      } else if (this.state === 'data' || this.state === 'meta') {
        const n = Math.min(this.remaining, buf.length - pos);
        const piece = buf.subarray(pos, pos + n);
        if (this.state === 'data') this.sink?.data(piece);
        else this.meta.push(Buffer.from(piece));
        this.remaining -= n;
        this.offset += n;
        pos += n;
        if (this.remaining === 0) this.finishEntry();
      } else {
        const n = Math.min(this.padding, buf.length - pos);
        this.padding -= n;
        this.offset += n;
        pos += n;
        if (this.padding === 0) this.state = 'header';
      }
    }
  }

  /** End of input. Throws TarTruncatedError unless an end-of-archive marker was seen. */
  end(): void {
    if (this.state === 'done' || (this.state === 'zero' && this.hdrFill === 0)) return;
    const inHeader = this.state === 'header' || this.state === 'zero';
    const where =
      this.state === 'header' && this.hdrFill === 0 ? 'without an end-of-archive marker' : `inside ${inHeader ? 'a header' : 'an entry'}`;
    throw new TarTruncatedError(`tar archive ends ${where} at byte ${this.offset + this.hdrFill}`);
  }

  private onBlock(): void {
    const h = this.hdr;
    if (isZero(h)) {
      if (Object.keys(this.pending).length > 0) throw new TarMalformedError('tar archive ends right after an extended header');
      // Go's archive/tar wants two zero blocks; one followed by a non-zero block is a broken archive.
      this.state = this.state === 'zero' ? 'done' : 'zero';
      return;
    }
    if (this.state === 'zero') throw new TarMalformedError(`tar data after end-of-archive block at byte ${this.offset}`);
    if (this.sparse) {
      // Sparse extension block: no checksum, just more map entries; byte 504 says if more follow.
      if (h[504] === 0) this.startEntry(this.sparse);
      return;
    }
    verifyChecksum(h, this.offset);

    const typeflag = String.fromCharCode(h[156]!);
    const rawSize = parseNumeric(h, 124, 12, 'size', this.offset);
    if (typeflag === 'x' || typeflag === 'X' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
      if (rawSize > MAX_META) throw new TarMalformedError(`tar ${typeflag} record of ${rawSize} bytes exceeds ${MAX_META}`);
      this.metaType = typeflag;
      this.meta = [];
      this.beginData(rawSize, 'meta');
      return;
    }

    const p = this.pending;
    this.pending = {};
    const magic = h.toString('latin1', 257, 263);
    const prefix = magic === 'ustar\0' ? cstr(h, 345, 155) : '';
    const rawName = p.path ?? (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
    const name = normalizeEntryName(rawName);
    // Pre-POSIX archives mark directories only by a trailing slash on a regular-file entry.
    const type = (typeflag === '0' || typeflag === '\0') && rawName.endsWith('/') ? 'directory' : (TYPES[typeflag] ?? 'other');
    const size = HEADER_ONLY.has(typeflag) ? 0 : (p.size ?? rawSize);
    const linkname = p.linkpath ?? cstr(h, 157, 100);
    // onBlock runs before this header block is counted; an old-GNU sparse entry's data comes
    // after its extension blocks, so startEntry sets the final offset.
    const entry: TarEntry = { name, type, typeflag, size, mode: parseNumeric(h, 100, 8, 'mode', this.offset), linkname, dataOffset: 0 };
    if (type === 'symlink' || type === 'hardlink') entry.linkTarget = resolveLinkTarget(name, linkname, type);
    // Old GNU sparse ('S'): the data is the stored fragments; its map may spill into extension
    // headers (flag at byte 482) that sit between this header and the data.
    if (typeflag === 'S' && h[482] !== 0) this.sparse = entry;
    else this.startEntry(entry);
  }

  private startEntry(entry: TarEntry): void {
    this.sparse = undefined;
    entry.dataOffset = this.offset + BLOCK;
    this.sink = this.onEntry(entry);
    this.beginData(entry.size, 'data');
  }

  private beginData(size: number, state: 'data' | 'meta'): void {
    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    this.state = state;
    if (size === 0) this.finishEntry();
  }

  private finishEntry(): void {
    if (this.state === 'meta') this.applyMeta(Buffer.concat(this.meta));
    else this.sink?.end();
    this.sink = undefined;
    this.meta = [];
    this.state = this.padding > 0 ? 'padding' : 'header';
  }

  private applyMeta(body: Buffer): void {
    // 'X' is Solaris tar's name for a pax extended header.
    if (this.metaType === 'L') this.pending.path = cstr(body, 0, body.length, 'utf8');
    else if (this.metaType === 'K') this.pending.linkpath = cstr(body, 0, body.length, 'utf8');
    else {
      const records = parsePax(body, this.offset);
      if (this.metaType === 'g') return; // global headers: no key we honour is meaningful globally
      if (records.has('path')) this.pending.path = records.get('path');
      if (records.has('linkpath')) this.pending.linkpath = records.get('linkpath');
      const size = records.get('size');
      if (size !== undefined) {
        if (!/^\d{1,16}$/.test(size) || !Number.isSafeInteger(Number(size))) throw new TarMalformedError(`bad pax size ${JSON.stringify(size)}`);
        this.pending.size = Number(size);
      }
    }
  }
}

/** Drive a {@link TarReader} from an async byte source (e.g. a file stream). */
export async function readTar(source: AsyncIterable<Uint8Array>, onEntry: TarEntryHandler): Promise<void> {
  const r = new TarReader(onEntry);
  for await (const chunk of source) r.push(chunk);
  r.end();
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function cstr(b: Buffer, off: number, len: number, enc: BufferEncoding = 'utf8'): string {
  const end = b.indexOf(0, off);
  return b.toString(enc, off, end < 0 || end > off + len ? off + len : end);
}

/** Octal ASCII (space/NUL padded) or GNU base-256 (high bit of the first byte set). */
function parseNumeric(b: Buffer, off: number, len: number, field: string, at: number): number {
  if (b[off]! & 0x80) {
    if (b[off] === 0xff) throw new TarMalformedError(`negative base-256 ${field} in header at byte ${at}`);
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    if (!Number.isSafeInteger(v)) throw new TarMalformedError(`${field} too large in header at byte ${at}`);
    return v;
  }
  const s = b.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarMalformedError(`bad octal ${field} ${JSON.stringify(s)} in header at byte ${at}`);
  return parseInt(s, 8);
}

function verifyChecksum(h: Buffer, at: number): void {
  let unsigned = 8 * 0x20; // the checksum field itself counts as spaces
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    unsigned += h[i]!;
    signed += (h[i]! << 24) >> 24;
  }
  const stored = parseNumeric(h, 148, 8, 'checksum', at);
  // Signed sums are a historic Sun/old-GNU bug still accepted by every mainstream reader.
  if (stored !== unsigned && stored !== signed) throw new TarMalformedError(`bad header checksum at byte ${at} (not a tar archive, or corrupted)`);
}

/** pax records: "<len> <key>=<value>\n", where <len> counts the whole record. */
function parsePax(body: Buffer, at: number): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < body.length) {
    const sp = body.indexOf(0x20, pos);
    const lenStr = sp < 0 ? '' : body.toString('latin1', pos, sp);
    const len = /^\d{1,7}$/.test(lenStr) ? Number(lenStr) : NaN;
    if (!(len > 0) || pos + len > body.length || body[pos + len - 1] !== 0x0a) {
      throw new TarMalformedError(`malformed pax record before byte ${at}`);
    }
    const rec = body.toString('utf8', sp + 1, pos + len - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0) throw new TarMalformedError(`malformed pax record ${JSON.stringify(rec.slice(0, 40))} before byte ${at}`);
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    pos += len;
  }
  return out;
}
