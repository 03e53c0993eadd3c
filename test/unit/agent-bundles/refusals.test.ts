import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSigningKey, signManifest, type BundleFile } from '../../../common/src/bundle/manifest.js';
import { silentLogger } from '../../../common/src/log.js';
import { BundleCache } from '../../../agent/src/bundles/bundle-cache.js';
import { buildBundle, FakeSource, ferryError, keptChunks, onlyBundleId, seededBytes, sha, tempDir, tree, unsignedManifest } from './fixtures.js';

describe('agent/bundles/bundle-cache: refusals', () => {
  const key = generateSigningKey();
  const stranger = generateSigningKey();
  const trustedKeys = [key.publicPem];
  let dir: string;
  let cache: BundleCache;

  beforeEach(async () => {
    dir = await tempDir();
    cache = new BundleCache(dir, silentLogger());
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const good = () => buildBundle([{ path: 'bin/tool', data: seededBytes(200_000, 1), mode: 0o755 }], key.privatePem);

  describe('signatures: nothing is written, nothing is fetched', () => {
    it('unsigned', async () => {
      const b = good();
      const src = new FakeSource(b.chunks);
      await assert.rejects(cache.stage({ ...b.signed, signature: '' }, { trustedKeys, source: src }), ferryError('SIGNATURE_INVALID', 'not signed'));
      assert.equal(src.calls, 0);
      assert.deepEqual(await tree(dir), []);
    });

    it('signed by a key this host does not trust', async () => {
      const b = buildBundle([{ path: 'x', data: seededBytes(1000, 1) }], stranger.privatePem);
      const src = new FakeSource(b.chunks);
      await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src }), ferryError('SIGNATURE_INVALID', stranger.keyId));
      assert.equal(src.calls, 0);
      assert.deepEqual(await tree(dir), []);
    });

    it('tampered after signing (one file path changed)', async () => {
      const b = good();
      const src = new FakeSource(b.chunks);
      const tampered = { ...b.signed, manifest: b.signed.manifest.replace('bin/tool', 'bin/evil') };
      await assert.rejects(cache.stage(tampered, { trustedKeys, source: src }), ferryError('SIGNATURE_INVALID', 'altered'));
      assert.equal(src.calls, 0);
      assert.deepEqual(await tree(dir), []);
    });

    it('a signature made by a trusted key over garbage is BUNDLE_INVALID, not a crash', async () => {
      const b = good();
      const { sign, createPrivateKey } = await import('node:crypto');
      const manifest = '{not json';
      const signature = sign(null, Buffer.from(manifest), createPrivateKey(key.privatePem)).toString('base64');
      await assert.rejects(cache.stage({ manifest, signature, keyId: b.signed.keyId }, { trustedKeys, source: new FakeSource(b.chunks) }), ferryError('BUNDLE_INVALID', 'not valid JSON'));
      assert.deepEqual(await tree(dir), []);
    });
  });

  describe('hostile paths and modes, validly signed: BUNDLE_INVALID naming the path, nothing written', () => {
    const data = seededBytes(3000, 7);
    const file = (path: string, mode = 0o644): BundleFile => ({ path, mode, size: data.length, sha256: sha(data), chunks: [{ digest: sha(data), size: data.length }] });
    const cases: Array<[string, BundleFile[], string]> = [
      ['parent escape', [file('../x')], '../x'],
      ['absolute', [file('/etc/passwd')], '/etc/passwd'],
      ['escape through a subdirectory', [file('a/../../b')], 'a/../../b'],
      ['"." component', [file('./a')], './a'],
      ['empty component', [file('a//b')], 'a//b'],
      ['trailing slash', [file('a/')], 'a/'],
      ['empty path', [file('')], 'empty'],
      ['backslash', [file('a\\b')], 'backslash'],
      ['NUL byte', [file('a\0b')], 'NUL'],
      ['duplicate path', [file('etc/x.conf'), file('etc/x.conf')], 'etc/x.conf'],
      ['file then a file under it', [file('a'), file('a/b')], 'a/b'],
      ['file under a path, then that path as a file', [file('a/b'), file('a')], '"a"'],
      ['setuid mode', [file('bin/su', 0o4755)], 'bin/su'],
      ['negative mode', [file('x', -1)], 'mode'],
      ['fractional mode', [file('x', 1.5)], 'mode'],
      ['chunks not adding up', [{ ...file('short'), size: 10 }], 'short'],
    ];
    for (const [what, files, needle] of cases) {
      it(what, async () => {
        const signed = signManifest(unsignedManifest(files), key.privatePem);
        const src = new FakeSource(new Map([[sha(data), data]]));
        await assert.rejects(cache.stage(signed, { trustedKeys, source: src }), ferryError('BUNDLE_INVALID', needle, 'nothing was written'));
        assert.equal(src.calls, 0);
        assert.deepEqual(await tree(dir), []);
      });
    }
  });

  it('not enough disk: DISK_FULL naming needed and available bytes and the directory; nothing fetched', async () => {
    const b = good();
    const src = new FakeSource(b.chunks);
    const statfs = async () => ({ bavail: 10, bsize: 4096 });
    const needed = 200_000; // the file, written once
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src, statfs }),
      ferryError('DISK_FULL', `(${needed} bytes)`, '40.0 KiB (40960 bytes)', dir));
    assert.equal(src.calls, 0);
    assert.deepEqual(cache.held(), []);
  });

  it('needs space for the file bytes still to write, reused ones included (checked once)', async () => {
    const base = seededBytes(400_000, 8);
    const a = buildBundle([{ path: 'f', data: base }], key.privatePem, { version: '1' });
    await cache.stage(a.signed, { trustedKeys, source: new FakeSource(a.chunks) });
    const b = buildBundle([{ path: 'f', data: base }, { path: 'g', data: seededBytes(50_000, 9) }], key.privatePem, { version: '2' });
    let asked = 0;
    const statfs = async (_p: string) => ({ bavail: 1, bsize: 1 });
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: new FakeSource(b.chunks), statfs: async (p) => { asked++; return statfs(p); } }),
      (e: Error) => e.message.includes(`(${400_000 + 50_000} bytes)`));
    assert.equal(asked, 1);
  });

  it('a corrupt chunk from the source is refused (CHUNK_DIGEST_MISMATCH naming it), never stored, no half-written file', async () => {
    const b = good();
    const src = new FakeSource(b.chunks);
    const bad = [...b.chunks.keys()][3]!;
    src.corrupt.add(bad);
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src, concurrency: 1 }), ferryError('CHUNK_DIGEST_MISMATCH', bad));
    const all = await tree(dir);
    assert.ok(!(await keptChunks(dir, await onlyBundleId(dir))).has(bad), 'corrupt chunk not kept');
    assert.ok(!all.some((p) => p.includes('.tmp-') || (p.includes('.ferry-part-') && !p.includes('/parts/'))), 'no temp files outside the part files');
    assert.ok(!all.some((p) => p.endsWith('bin/tool') || p.endsWith('manifest.json')), 'no file, no manifest');
    assert.deepEqual(cache.held(), []);
    // The good chunks fetched before the bad one are kept: the retry asks only for the rest.
    const src2 = new FakeSource(b.chunks);
    await cache.stage(b.signed, { trustedKeys, source: src2 });
    assert.ok(src2.requested.length < b.chunks.size && src2.requested.includes(bad));
  });

  it('a kept chunk that rotted in its part file is found when its file is finished (read back, checked) and fetched again', async () => {
    const b = good();
    const ac = new AbortController();
    const src = new FakeSource(b.chunks);
    src.onChunk = (n) => { if (n === 8) ac.abort(); };
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src, signal: ac.signal, concurrency: 1 }), ferryError('CANCELLED'));
    const id = await onlyBundleId(dir);
    const staged = (await keptChunks(dir, id)).size;
    const m = JSON.parse(b.signed.manifest) as { files: BundleFile[] };
    const victim = m.files[0]!.chunks[0]!.digest; // at offset 0 of part file 0
    const p = join(dir, 'bundles', id, 'parts', '.ferry-part-0');
    const bytes = await readFile(p);
    bytes[10]! ^= 0xff;
    await writeFile(p, bytes);
    const src2 = new FakeSource(b.chunks);
    const r = await cache.stage(b.signed, { trustedKeys, source: src2 });
    assert.equal(src2.requested.filter((d) => d === victim).length, 1, 'the rotted chunk was fetched again, once');
    assert.equal(src2.requested.length, b.chunks.size - staged + 1);
    assert.deepEqual(await readFile(join(cache.filesDir(r.bundleId), 'bin/tool')), seededBytes(200_000, 1));
  });

  it('a part file truncated on disk (a power cut before the data reached it) is repaired: the missing chunks are fetched again', async () => {
    const b = good();
    const ac = new AbortController();
    const src = new FakeSource(b.chunks);
    src.onChunk = (n) => { if (n === 4) ac.abort(); };
    await assert.rejects(cache.stage(b.signed, { trustedKeys, source: src, signal: ac.signal, concurrency: 1 }), ferryError('CANCELLED'));
    const id = await onlyBundleId(dir);
    const m = JSON.parse(b.signed.manifest) as { files: BundleFile[] };
    const victim = m.files[0]!.chunks[1]!.digest;
    const p = join(dir, 'bundles', id, 'parts', '.ferry-part-0');
    await writeFile(p, (await readFile(p)).subarray(0, m.files[0]!.chunks[0]!.size + 100)); // cuts into chunk 1
    const src2 = new FakeSource(b.chunks);
    const r = await cache.stage(b.signed, { trustedKeys, source: src2 });
    assert.equal(src2.requested.filter((d) => d === victim).length, 1);
    assert.deepEqual(await readFile(join(cache.filesDir(r.bundleId), 'bin/tool')), seededBytes(200_000, 1));
  });
});
