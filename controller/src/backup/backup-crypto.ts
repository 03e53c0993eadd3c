import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

/**
 * The encrypted container of a controller backup, read and written as a
 * stream (a backup with its chunk store can be many GiB):
 *
 *   "FERRYBAK" | version u8 (1) | header length u32 | header (JSON)
 *   segments:  plaintext length u32 | final u8 | ciphertext | GCM tag (16)
 *
 * The header names the KDF (scrypt, its cost and salt), a random nonce
 * prefix and a key check. The passphrase gives 64 bytes by scrypt: the
 * first 32 are the AES-256-GCM key, the last 32 key an HMAC whose value on
 * a fixed string is the key check, so a wrong passphrase is told apart
 * from a damaged file without decrypting anything. Every segment is sealed
 * on its own (nonce = prefix ‖ index) with the header's hash, its index and
 * its final flag as associated data: an altered header, an altered,
 * dropped, reordered or repeated segment fails its tag, and a file cut
 * short ends without a final segment. Nothing of the plaintext is used
 * before its segment's tag has been checked.
 */

const MAGIC = Buffer.from('FERRYBAK');
const VERSION = 1;
/** Plaintext per segment: large enough that the 21 bytes of framing do not matter, small enough to hold in memory. */
export const SEGMENT_BYTES = 1 << 20;
/** scrypt cost: 2^17 × 8 × 128 B = 128 MiB and about half a second here, once per backup or restore. */
const SCRYPT = { N: 1 << 17, r: 8, p: 1 };
const KEY_CHECK_LABEL = 'ferry backup key check v1';

interface Header {
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  noncePrefix: string;
  keyCheck: string;
  createdAtMs: number;
}

function derive(passphrase: string, h: Header['kdf']): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(passphrase, Buffer.from(h.salt, 'base64'), 64,
    { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r + (1 << 20) }, (err, key) => (err ? reject(err) : resolve(key))));
}

function keyCheck(key: Buffer): Buffer {
  return createHmac('sha256', key.subarray(32)).update(KEY_CHECK_LABEL).digest();
}

function nonce(prefix: Buffer, index: number): Buffer {
  const n = Buffer.alloc(12);
  prefix.copy(n, 0, 0, 4);
  n.writeBigUInt64BE(BigInt(index), 4);
  return n;
}

function aad(headerHash: Buffer, index: number, final: boolean): Buffer {
  const a = Buffer.alloc(headerHash.length + 9);
  headerHash.copy(a);
  a.writeBigUInt64BE(BigInt(index), headerHash.length);
  a[headerHash.length + 8] = final ? 1 : 0;
  return a;
}

/** Writes the container: plaintext in, sealed segments out through `write`. */
export class BackupSealer {
  private buf: Buffer[] = [];
  private buffered = 0;
  private index = 0;

  private constructor(private readonly write: (b: Buffer) => Promise<void>, private readonly key: Buffer, private readonly prefix: Buffer, private readonly headerHash: Buffer) {}

  /** Derives the key and writes the header. */
  static async start(passphrase: string, write: (b: Buffer) => Promise<void>, now = Date.now()): Promise<BackupSealer> {
    const kdf = { name: 'scrypt' as const, ...SCRYPT, salt: randomBytes(16).toString('base64') };
    const key = await derive(passphrase, kdf);
    const prefix = randomBytes(4);
    const header: Header = { kdf, cipher: 'aes-256-gcm', noncePrefix: prefix.toString('base64'), keyCheck: keyCheck(key).toString('base64'), createdAtMs: now };
    const json = Buffer.from(JSON.stringify(header));
    const lead = Buffer.alloc(MAGIC.length + 5);
    MAGIC.copy(lead);
    lead[MAGIC.length] = VERSION;
    lead.writeUInt32BE(json.length, MAGIC.length + 1);
    const head = Buffer.concat([lead, json]);
    await write(head);
    return new BackupSealer(write, key, prefix, createHash('sha256').update(head).digest());
  }

  /** Adds plaintext; full segments are sealed and written as they fill. */
  async push(b: Buffer): Promise<void> {
    let off = 0;
    while (off < b.length) {
      const take = Math.min(SEGMENT_BYTES - this.buffered, b.length - off);
      this.buf.push(b.subarray(off, off + take));
      this.buffered += take;
      off += take;
      if (this.buffered === SEGMENT_BYTES) await this.seal(false);
    }
  }

  /** Seals what is left as the final segment (possibly empty). */
  async finish(): Promise<void> {
    await this.seal(true);
  }

  private async seal(final: boolean): Promise<void> {
    const plain = Buffer.concat(this.buf, this.buffered);
    this.buf = [];
    this.buffered = 0;
    const c = createCipheriv('aes-256-gcm', this.key.subarray(0, 32), nonce(this.prefix, this.index));
    c.setAAD(aad(this.headerHash, this.index, final));
    const body = Buffer.concat([c.update(plain), c.final()]);
    const lead = Buffer.alloc(5);
    lead.writeUInt32BE(plain.length, 0);
    lead[4] = final ? 1 : 0;
    await this.write(Buffer.concat([lead, body, c.getAuthTag()]));
    this.index++;
  }
}

const damaged = (file: string, what: string) => new FerryError(ErrorCode.BackupDamaged, `${file}: ${what}`,
  'use another copy of the backup; nothing was restored from this one');

/** Reads exactly `n` bytes at `pos`, or fewer only at the end of the file. */
async function readAt(fh: FileHandle, pos: number, n: number): Promise<Buffer> {
  const b = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(b, got, n - got, pos + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return b.subarray(0, got);
}

/**
 * Opens a container: checks the header and the passphrase, then yields the
 * plaintext segment by segment, each only after its tag was verified.
 */
export async function* openBackup(fh: FileHandle, file: string, passphrase: string): AsyncGenerator<Buffer> {
  const lead = await readAt(fh, 0, MAGIC.length + 5);
  if (lead.length < MAGIC.length || !lead.subarray(0, MAGIC.length).equals(MAGIC)) throw damaged(file, 'not a Ferry controller backup (no FERRYBAK header)');
  if (lead.length < MAGIC.length + 5) throw damaged(file, 'the file is truncated (inside its header)');
  const version = lead[MAGIC.length]!;
  if (version !== VERSION) {
    throw new FerryError(ErrorCode.BackupDamaged, `${file}: backup format version ${version}; this ferry reads version ${VERSION}`, 'restore it with the ferry version that made it, or a newer one');
  }
  const len = lead.readUInt32BE(MAGIC.length + 1);
  if (len > 64 * 1024) throw damaged(file, `header length ${len} is not plausible (altered?)`);
  const json = await readAt(fh, lead.length, len);
  if (json.length < len) throw damaged(file, 'the file is truncated (inside its header)');
  let h: Header;
  try {
    h = JSON.parse(json.toString('utf8')) as Header;
    if (h.kdf?.name !== 'scrypt' || h.cipher !== 'aes-256-gcm' || typeof h.noncePrefix !== 'string' || typeof h.keyCheck !== 'string') throw new Error('unknown algorithms');
    // Bounds: an altered header must not make scrypt ask for gigabytes.
    if (!(h.kdf.N >= 1024 && h.kdf.N <= 1 << 20 && h.kdf.r >= 1 && h.kdf.r <= 16 && h.kdf.p >= 1 && h.kdf.p <= 4)) throw new Error('scrypt cost out of range');
  } catch (err) {
    throw damaged(file, `the header does not parse (${(err as Error).message})`);
  }
  const key = await derive(passphrase, h.kdf);
  const check = Buffer.from(h.keyCheck, 'base64');
  const want = keyCheck(key);
  if (check.length !== want.length || !timingSafeEqual(check, want)) {
    throw new FerryError(ErrorCode.BackupPassphrase, `${file}: the passphrase does not open this backup`,
      'give the passphrase it was made with (--passphrase-file FILE or FERRY_BACKUP_PASSPHRASE); nothing was restored');
  }
  const headerHash = createHash('sha256').update(Buffer.concat([lead, json])).digest();
  const prefix = Buffer.from(h.noncePrefix, 'base64');
  let pos = lead.length + len;
  for (let index = 0; ; index++) {
    const sl = await readAt(fh, pos, 5);
    if (sl.length === 0) throw damaged(file, `the file is truncated (it ends after ${index} segments, without the final one)`);
    if (sl.length < 5) throw damaged(file, `the file is truncated (inside segment ${index})`);
    const n = sl.readUInt32BE(0);
    const final = sl[4] === 1;
    if (n > SEGMENT_BYTES || sl[4]! > 1) throw damaged(file, `segment ${index} has an impossible length or flag (altered?)`);
    const body = await readAt(fh, pos + 5, n + 16);
    if (body.length < n + 16) throw damaged(file, `the file is truncated (inside segment ${index})`);
    const d = createDecipheriv('aes-256-gcm', key.subarray(0, 32), nonce(prefix, index));
    d.setAAD(aad(headerHash, index, final));
    d.setAuthTag(body.subarray(n));
    let plain: Buffer;
    try {
      plain = Buffer.concat([d.update(body.subarray(0, n)), d.final()]);
    } catch {
      throw damaged(file, `segment ${index} (at byte ${pos}) was altered or damaged: its authentication tag does not match`);
    }
    pos += 5 + n + 16;
    yield plain;
    if (final) {
      const extra = await readAt(fh, pos, 1);
      if (extra.length > 0) throw damaged(file, `there are bytes after the final segment (at byte ${pos}); the file was altered`);
      return;
    }
  }
}
