import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, type FerryError } from '../../../common/src/errors.js';
import { BackupSealer, openBackup, SEGMENT_BYTES } from '../../../controller/src/backup/backup-crypto.js';

/** Seals `plain` and returns the container's bytes and where each segment starts. */
async function seal(plain: Buffer, pass: string): Promise<{ bytes: Buffer; segments: number[] }> {
  const parts: Buffer[] = [];
  const segments: number[] = [];
  let pos = 0;
  let first = true;
  const sealer = await BackupSealer.start(pass, async (b) => {
    if (!first) segments.push(pos);
    first = false;
    parts.push(b);
    pos += b.length;
  });
  await sealer.push(plain);
  await sealer.finish();
  return { bytes: Buffer.concat(parts), segments };
}

describe('backup container (scrypt + AES-256-GCM segments)', function () {
  this.timeout(30_000);
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bk-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const plain = randomBytes(2 * SEGMENT_BYTES + 12345);
  let sealed: { bytes: Buffer; segments: number[] };
  before(async () => { sealed = await seal(plain, 'a long enough passphrase'); });

  async function openAll(bytes: Buffer, pass = 'a long enough passphrase'): Promise<Buffer> {
    const f = join(dir, `c-${randomBytes(3).toString('hex')}`);
    writeFileSync(f, bytes);
    const fh = await open(f, 'r');
    try {
      const out: Buffer[] = [];
      for await (const p of openBackup(fh, f, pass)) out.push(p);
      return Buffer.concat(out);
    } finally {
      await fh.close();
    }
  }

  it('gives back exactly what went in, over several segments', async () => {
    assert.equal(sealed.segments.length, 3);
    assert.ok((await openAll(sealed.bytes)).equals(plain));
    assert.ok(!sealed.bytes.includes(plain.subarray(0, 64)), 'no plaintext in the container');
  });

  it('tells a wrong passphrase apart from damage', async () => {
    await assert.rejects(openAll(sealed.bytes, 'another passphrase'), (e: FerryError) => e.code === ErrorCode.BackupPassphrase);
  });

  it('refuses segments swapped, a final segment dropped, and an altered header', async () => {
    const [s0, s1, s2] = sealed.segments as [number, number, number];
    const b = sealed.bytes;
    const swapped = Buffer.concat([b.subarray(0, s0), b.subarray(s1, s2), b.subarray(s0, s1), b.subarray(s2)]);
    await assert.rejects(openAll(swapped), (e: FerryError) => e.code === ErrorCode.BackupDamaged && /segment 0 .*altered/.test(e.message));
    await assert.rejects(openAll(b.subarray(0, s2)), (e: FerryError) => e.code === ErrorCode.BackupDamaged && /truncated .*without the final one/.test(e.message));
    const header = Buffer.from(b);
    header[20] ^= 0x20; // inside the JSON header
    await assert.rejects(openAll(header), (e: FerryError) => e.code === ErrorCode.BackupDamaged || e.code === ErrorCode.BackupPassphrase);
    await assert.rejects(openAll(Buffer.concat([b, Buffer.from('x')])), /bytes after the final segment/);
  });
});
