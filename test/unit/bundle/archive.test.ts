import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ArchiveChunk, readBundleArchive, writeBundleArchive } from '../../../common/src/bundle/archive.js';
import { buildManifest } from '../../../common/src/bundle/builder.js';
import { type BundleManifest, type SignedManifest, generateSigningKey, signManifest } from '../../../common/src/bundle/manifest.js';
import { FerryError } from '../../../common/src/errors.js';
import { imageTar } from '../../fixtures/bundles/fixtures.js';
import { type TarSpec, makeTar } from './make-image-tar.js';
import { seededBytes } from './prng.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const key = generateSigningKey();

function rejectsWith(code: string, text: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof FerryError, `expected FerryError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, text);
    assert.ok(e.hint && e.hint.length > 0);
    return true;
  };
}

async function drain(path: string, opts?: { trustedKeys?: string[] }): Promise<ArchiveChunk[]> {
  const a = await readBundleArchive(path, opts);
  const out: ArchiveChunk[] = [];
  for await (const c of a.chunks()) out.push(c);
  return out;
}

describe('bundle/archive', () => {
  let src: string;
  let out: string;
  let manifest: BundleManifest;
  let signed: SignedManifest;

  before(async () => {
    src = await mkdtemp(join(tmpdir(), 'ferry-arch-src-'));
    out = await mkdtemp(join(tmpdir(), 'ferry-arch-out-'));
    await mkdir(join(src, 'bin'));
    await mkdir(join(src, 'images'));
    const big = seededBytes(5 * 1024 * 1024, 11);
    await writeFile(join(src, 'bin/k3s'), big);
    await writeFile(join(src, 'bin/k3s-copy'), big); // same chunks: stored once
    await writeFile(join(src, 'empty'), '');
    await writeFile(join(src, 'images/cloudcore.tar'), imageTar('docker.io/kubeedge/cloudcore:v1.22.0'));
    manifest = await buildManifest(src, { name: 'kubeedge', version: '1.22.0', now: new Date(0) });
    signed = signManifest(manifest, key.privatePem);
  });
  after(async () => {
    await rm(src, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  it('round trip: manifest.json first, each chunk once, all verified; deterministic bytes', async () => {
    const path = join(out, 'kubeedge-1.22.ferry');
    const w = await writeBundleArchive(signed, src, path);
    const distinct = new Set(manifest.files.flatMap((f) => f.chunks.map((c) => c.digest)));
    assert.equal(w.chunks, distinct.size);
    assert.equal(w.bytes, (await stat(path)).size);
    assert.deepEqual((await readdir(out)).sort(), ['kubeedge-1.22.ferry'], 'no temp file left behind');

    const listing = execFileSync('tar', ['-tf', path], { encoding: 'utf8' }).trim().split('\n');
    assert.equal(listing[0], 'manifest.json', 'any tar can list it; manifest first');
    assert.equal(listing.length, 1 + distinct.size);

    const a = await readBundleArchive(path, { trustedKeys: [key.publicPem] });
    assert.deepEqual(a.signed, signed);
    assert.deepEqual(a.manifest, manifest);
    const chunks: ArchiveChunk[] = [];
    for await (const c of a.chunks()) chunks.push(c);
    assert.deepEqual(chunks.map((c) => c.digest).sort(), [...distinct].sort());
    for (const c of chunks) assert.equal(sha(c.data), c.digest);
    // Reassembling a file from the chunks gives the original bytes.
    const byDigest = new Map(chunks.map((c) => [c.digest, c.data]));
    const k3s = manifest.files.find((f) => f.path === 'bin/k3s')!;
    assert.equal(sha(Buffer.concat(k3s.chunks.map((c) => byDigest.get(c.digest)!))), k3s.sha256);
    assert.throws(() => a.chunks(), /only once/);

    const again = join(out, 'again.ferry');
    await writeBundleArchive(signed, src, again);
    assert.equal(sha(await readFile(again)), sha(await readFile(path)), 'same bundle, same bytes');
    await rm(again);
  });

  it('a truncated archive fails with TAR_TRUNCATED, however it is cut', async () => {
    const path = join(out, 'full.ferry');
    await writeBundleArchive(signed, src, path);
    const size = (await stat(path)).size;
    for (const cut of [size - 1024, Math.floor(size / 2), 700, 100]) {
      const t = join(out, `cut-${cut}.ferry`);
      await writeFile(t, (await readFile(path)).subarray(0, cut));
      await assert.rejects(drain(t), rejectsWith('TAR_TRUNCATED', new RegExp(`^${t.replace(/[.]/g, '\\.')}: tar archive ends`)), `cut at ${cut}`);
      await rm(t);
    }
    await truncate(path, 0);
    await assert.rejects(drain(path), rejectsWith('TAR_TRUNCATED', /ends without an end-of-archive marker/));
    await rm(path);
  });

  it('a corrupted chunk fails with CHUNK_DIGEST_MISMATCH after the good chunks before it', async () => {
    const path = join(out, 'corrupt.ferry');
    await writeBundleArchive(signed, src, path);
    const buf = await readFile(path);
    const last = buf.lastIndexOf('chunks/'); // header of the last chunk entry
    buf[last + 512 + 10]! ^= 0xff; // flip a byte of its data
    await writeFile(path, buf);
    const a = await readBundleArchive(path);
    let good = 0;
    await assert.rejects(async () => {
      for await (const c of a.chunks()) assert.equal(sha(c.data), c.digest, 'only verified chunks are yielded'), good++;
    }, rejectsWith('CHUNK_DIGEST_MISMATCH', /corrupt\.ferry: chunk [0-9a-f]{64} is corrupted \(its bytes hash to [0-9a-f]{64}\)/));
    assert.ok(good > 0);
    await rm(path);
  });

  it('refuses foreign entries, path escapes, duplicates, wrong sizes, missing chunks, non-bundles', async () => {
    const chunkData = await readChunks();
    const [d0, d1] = [...chunkData.keys()];
    const m: TarSpec = { name: 'manifest.json', data: JSON.stringify(signed) };
    const ch = (d: string, data = chunkData.get(d)!): TarSpec => ({ name: `chunks/${d}`, data });
    const cases: Array<[string, TarSpec[], string, RegExp]> = [
      ['extra file', [m, ch(d0!), { name: 'README', data: 'hi' }], 'BUNDLE_INVALID', /unexpected file entry "README"/],
      ['path escape', [m, { name: '../../etc/cron.d/x', data: 'x' }], 'TAR_PATH_ESCAPE', /"\.\.\/\.\.\/etc\/cron\.d\/x"/],
      ['symlink', [m, { name: `chunks/${d0}`, type: 'symlink', linkname: 'manifest.json' }], 'BUNDLE_INVALID', /unexpected symlink entry/],
      ['unknown chunk', [m, ch('f'.repeat(64), Buffer.from('x'))], 'BUNDLE_INVALID', /not a chunk of this bundle's manifest/],
      ['duplicate', [m, ch(d0!), ch(d0!)], 'BUNDLE_INVALID', /appears twice/],
      ['wrong size', [m, ch(d0!, chunkData.get(d0!)!.subarray(1))], 'BUNDLE_INVALID', /bytes, the manifest says/],
      ['missing chunks', [m, ch(d0!), ch(d1!)], 'BUNDLE_INVALID', /archive ends after 2 of \d+ chunks: it is incomplete/],
      ['manifest not first', [ch(d0!), m], 'BUNDLE_INVALID', /first entry is "chunks\/[0-9a-f]{64}", not manifest\.json/],
      ['not JSON', [{ name: 'manifest.json', data: '{nope' }], 'BUNDLE_INVALID', /manifest\.json is not JSON/],
      ['not signed', [{ name: 'manifest.json', data: '{"manifest": 1}' }], 'BUNDLE_INVALID', /not a signed manifest/],
    ];
    for (const [what, entries, code, re] of cases) {
      const path = join(out, 'hostile.ferry');
      await writeFile(path, makeTar(entries));
      await assert.rejects(drain(path), rejectsWith(code, re), what);
    }
    await writeFile(join(out, 'hostile.ferry'), 'not a tar at all, just text that is long enough to fill a header block'.repeat(10));
    await assert.rejects(drain(join(out, 'hostile.ferry')), rejectsWith('BUNDLE_INVALID', /hostile\.ferry is not a Ferry bundle archive \(not a tar file: /));
    await rm(join(out, 'hostile.ferry'));
  });

  it('missing files and directories are FerryErrors naming the path', async () => {
    await assert.rejects(readBundleArchive(join(out, 'nope.ferry')), rejectsWith('NOT_FOUND', /nope\.ferry: ENOENT/));
    await assert.rejects(writeBundleArchive(signed, src, join(out, 'no-dir', 'x.ferry')), rejectsWith('NOT_FOUND', /cannot create .*no-dir\/x\.ferry: ENOENT/));
  });

  it('with trusted keys, a tampered or foreign-signed manifest is refused before any chunk', async () => {
    const path = join(out, 'tampered.ferry');
    const forged = { ...signed, manifest: signed.manifest.replace('"kubeedge"', '"evil"') };
    await writeFile(path, makeTar([{ name: 'manifest.json', data: JSON.stringify(forged) }]));
    await assert.rejects(readBundleArchive(path, { trustedKeys: [key.publicPem] }), rejectsWith('SIGNATURE_INVALID', /does not verify/));
    await writeFile(path, makeTar([{ name: 'manifest.json', data: JSON.stringify(signed) }]));
    await assert.rejects(readBundleArchive(path, { trustedKeys: [generateSigningKey().publicPem] }), rejectsWith('SIGNATURE_INVALID', /which this host does not trust/));
    await rm(path);
  });

  it('writing is atomic: a source file changed since the build leaves the old archive in place', async () => {
    const path = join(out, 'atomic.ferry');
    await writeFile(path, 'previous archive');
    const changed = await mkdtemp(join(tmpdir(), 'ferry-arch-changed-'));
    try {
      await writeFile(join(changed, 'a.txt'), 'version one');
      const m = await buildManifest(changed, { name: 'x', version: '1', arch: ['amd64'] });
      await writeFile(join(changed, 'a.txt'), 'version two');
      await assert.rejects(writeBundleArchive(signManifest(m, key.privatePem), changed, path), rejectsWith('BUNDLE_INVALID', /a\.txt changed since the manifest was built/));
      assert.equal(await readFile(path, 'utf8'), 'previous archive');
      assert.deepEqual((await readdir(out)).filter((n) => n.includes('.tmp-')), []);
    } finally {
      await rm(changed, { recursive: true, force: true });
      await rm(path, { force: true });
    }
  });

  /** digest -> bytes, from a fresh archive. */
  async function readChunks(): Promise<Map<string, Buffer>> {
    const path = join(out, 'for-chunks.ferry');
    await writeBundleArchive(signed, src, path);
    const m = new Map((await drain(path)).map((c) => [c.digest, c.data]));
    await rm(path);
    return m;
  }
});
