import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { BundleError } from '../../../common/src/bundle/errors.js';
import { inspectImageTar, inspectImageTarFile, type ImageInfo, type InspectImageTarOptions } from '../../../common/src/bundle/image-tar.js';
import { type ExpectedImage, type ImageSpec, type TarSpec, makeDockerArchive, makeOciLayout, makeTar } from './make-image-tar.js';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Feed the tar in uneven pieces, as a file stream would. */
async function* pieces(buf: Buffer, size = 7000): AsyncGenerator<Buffer> {
  for (let o = 0; o < buf.length; o += size) yield buf.subarray(o, o + size);
}

const inspect = (tar: Buffer, o?: InspectImageTarOptions) => inspectImageTar(pieces(tar), o);

function rejectsWith(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof BundleError, `expected BundleError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.hint.length > 0);
    return true;
  };
}

/** Compare the reported image with the builder's expectation (manifest digest if known). */
function assertImage(got: ImageInfo, want: ExpectedImage): void {
  const { manifestDigest, ...rest } = want;
  const { manifestDigest: gotManifest, manifestDigestSynthetic: _s, ...gotRest } = got;
  assert.deepEqual(gotRest, rest);
  if (manifestDigest) assert.equal(gotManifest, manifestDigest);
  assert.match(gotManifest, /^sha256:[0-9a-f]{64}$/);
}

const nginx: ImageSpec = { ref: 'registry.example.com/web/nginx:1.27', layers: [{ 'etc/nginx.conf': 'worker_processes 1;' }, { 'usr/sbin/nginx': 'ELF…' }] };
const pause: ImageSpec = { ref: 'registry.k8s.io/pause:3.10', arch: 'arm64', variant: 'v8', layers: [{ pause: 'zzz' }] };

/** Replace the data of the entry called `name`. */
function withData(entries: TarSpec[], name: string, data: Buffer | string): TarSpec[] {
  return entries.map((e) => (e.name === name ? { ...e, data } : e));
}
const without = (entries: TarSpec[], name: string) => entries.filter((e) => e.name !== name);
const blobName = (digest: string) => `blobs/sha256/${digest.slice(7)}`;

describe('bundle/image-tar', () => {
  describe('OCI image layout', () => {
    it('reports refs, platform, digests, layers and size', async () => {
      const { entries, expected } = makeOciLayout([nginx, pause]);
      const r = await inspect(makeTar(entries));
      assert.equal(r.format, 'oci');
      assert.equal(r.images.length, 2);
      r.images.forEach((img, i) => assertImage(img, expected[i]!));
      assert.equal(r.images[0]!.manifestDigestSynthetic, false);
      assert.deepEqual(r.images[0]!.refs, ['registry.example.com/web/nginx:1.27']);
      assert.deepEqual(r.images[1]!.platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
    });

    it('takes full refs from org.opencontainers.image.ref.name (skopeo style)', async () => {
      const { entries, expected } = makeOciLayout([nginx], { annotations: 'oci' });
      const r = await inspect(makeTar(entries));
      assertImage(r.images[0]!, expected[0]!);
    });

    it('blob order does not matter (metadata after or before blobs)', async () => {
      const { entries, expected } = makeOciLayout([nginx]);
      const r = await inspect(makeTar([...entries].reverse()));
      assertImage(r.images[0]!, expected[0]!);
    });

    it('multi-platform index: one image per platform, refs inherited, attestations skipped', async () => {
      const amd = { ...nginx, arch: 'amd64' };
      const arm = { ...nginx, ref: undefined, arch: 'arm64', variant: 'v8', layers: [{ 'usr/sbin/nginx': 'arm ELF' }] };
      const { entries, expected } = makeOciLayout([amd, arm], { multiPlatform: true });
      const r = await inspect(makeTar(entries));
      assert.equal(r.images.length, 2);
      r.images.forEach((img, i) => assertImage(img, expected[i]!));
      assert.deepEqual(r.images.map((i) => i.refs), [[nginx.ref], [nginx.ref]]);
    });

    it('multi-platform index with a platform missing: error, or skipped on request', async () => {
      const { entries, expected } = makeOciLayout([nginx, { ...pause, ref: undefined }], { multiPlatform: true });
      const partial = makeTar(without(entries, blobName(expected[1]!.manifestDigest!)));
      await assert.rejects(inspect(partial), rejectsWith('IMAGE_BLOB_MISSING'));
      const r = await inspect(partial, { skipMissingPlatforms: true });
      assert.equal(r.images.length, 1);
      assertImage(r.images[0]!, expected[0]!);
    });

    it('Docker 25+ save (OCI layout + manifest.json) merges RepoTags', async () => {
      const { entries, expected } = makeOciLayout([nginx]);
      const manifestJson = [{ Config: blobName(expected[0]!.configDigest), RepoTags: ['nginx:1.27', nginx.ref], Layers: expected[0]!.layers.map((l) => blobName(l.digest)) }];
      const r = await inspect(makeTar([...entries, { name: 'manifest.json', data: JSON.stringify(manifestJson) }]));
      assert.equal(r.format, 'oci');
      assert.deepEqual(r.images[0]!.refs, [nginx.ref, 'nginx:1.27']);
    });

    it('reads gzipped tars and files on disk', async () => {
      const { entries, expected } = makeOciLayout([nginx]);
      const tar = makeTar(entries);
      assertImage((await inspect(gzipSync(tar))).images[0]!, expected[0]!);
      const dir = await mkdtemp(join(tmpdir(), 'ferry-img-'));
      try {
        await writeFile(join(dir, 'img.tar'), tar);
        assertImage((await inspectImageTarFile(join(dir, 'img.tar'))).images[0]!, expected[0]!);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('long entry names via pax and GNU headers', async () => {
      const { entries, expected } = makeOciLayout([nginx]);
      const longPad = 'x'.repeat(120);
      for (const longName of ['pax', 'gnu'] as const) {
        const extra: TarSpec = { name: `notes/${longPad}/README`, data: 'hi', longName };
        const r = await inspect(makeTar([...entries, extra]));
        assertImage(r.images[0]!, expected[0]!);
      }
    });
  });

  describe('docker-archive', () => {
    it('reports refs, platform, digests, layers and size', async () => {
      const { entries, expected } = makeDockerArchive([nginx, pause]);
      const r = await inspect(makeTar(entries));
      assert.equal(r.format, 'docker-archive');
      r.images.forEach((img, i) => assertImage(img, expected[i]!));
      assert.ok(r.images.every((i) => i.manifestDigestSynthetic));
    });

    it('synthetic manifest digest is sha256 of the canonical OCI manifest', async () => {
      const { entries, expected } = makeDockerArchive([nginx]);
      const img = (await inspect(makeTar(entries))).images[0]!;
      const e = expected[0]!;
      const cfgSize = e.totalSize - e.layers.reduce((n, l) => n + l.size, 0);
      const canonical =
        `{"config":{"digest":"${e.configDigest}","mediaType":"application/vnd.oci.image.config.v1+json","size":${cfgSize}},` +
        `"layers":[${e.layers.map((l) => `{"digest":"${l.digest}","mediaType":"application/vnd.oci.image.layer.v1.tar","size":${l.size}}`).join(',')}],` +
        `"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}`;
      assert.equal(img.manifestDigest, `sha256:${sha(canonical)}`);
      // Content-only: re-tagging the same image must not change it.
      const retagged = makeDockerArchive([{ ...nginx, ref: 'other:tag' }]);
      assert.equal((await inspect(makeTar(retagged.entries))).images[0]!.manifestDigest, img.manifestDigest);
    });

    it('follows layers shared through symlinks', async () => {
      const { entries, expected } = makeDockerArchive([nginx, { ...nginx, ref: 'copy:1' }], { shareLayers: true });
      assert.ok(entries.some((e) => e.type === 'symlink'));
      const r = await inspect(makeTar(entries));
      r.images.forEach((img, i) => assertImage(img, expected[i]!));
    });

    it('falls back to the legacy repositories file when RepoTags is null', async () => {
      const { entries, expected } = makeDockerArchive([nginx]);
      const m = JSON.parse(String(entries.find((e) => e.name === 'manifest.json')!.data));
      m[0].RepoTags = null;
      const r = await inspect(makeTar(withData(entries, 'manifest.json', JSON.stringify(m))));
      assertImage(r.images[0]!, expected[0]!);
    });

    it('detects gzip layers for the media type', async () => {
      const { entries } = makeDockerArchive([nginx]);
      const layerName = entries.find((e) => e.name.endsWith('/layer.tar'))!.name;
      const gz = gzipSync(entries.find((e) => e.name === layerName)!.data as Buffer);
      const r = await inspect(makeTar(withData(entries, layerName, gz)));
      assert.equal(r.images[0]!.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      assert.equal(r.images[0]!.layers[0]!.digest, `sha256:${sha(gz)}`);
    });
  });

  describe('hostile and broken tars', () => {
    const oci = makeOciLayout([nginx]);
    const docker = makeDockerArchive([nginx]);
    const layer0 = blobName(oci.expected[0]!.layers[0]!.digest);

    it('truncated tar (inside a blob, or missing the end marker) is TAR_TRUNCATED', async () => {
      const tar = makeTar(oci.entries);
      await assert.rejects(inspect(tar.subarray(0, Math.floor(tar.length / 2))), rejectsWith('TAR_TRUNCATED'));
      await assert.rejects(inspect(tar.subarray(0, tar.length - 1024)), rejectsWith('TAR_TRUNCATED'));
      await assert.rejects(inspect(Buffer.alloc(0)), rejectsWith('TAR_TRUNCATED'));
    });

    it('truncated .tar.gz is TAR_TRUNCATED', async () => {
      const gz = gzipSync(makeTar(oci.entries));
      await assert.rejects(inspect(gz.subarray(0, gz.length - 100)), rejectsWith('TAR_TRUNCATED'));
    });

    it('entry names with .. or absolute paths are TAR_PATH_ESCAPE', async () => {
      for (const name of ['../../etc/cron.d/x', 'blobs/../../x', '/etc/passwd']) {
        await assert.rejects(inspect(makeTar([...oci.entries, { name, data: 'x' }])), rejectsWith('TAR_PATH_ESCAPE'), name);
      }
    });

    it('symlinks and hardlinks escaping the archive are TAR_LINK_ESCAPE', async () => {
      const links: TarSpec[] = [
        { name: 'blobs/sha256/evil', type: 'symlink', linkname: '/etc/shadow' },
        { name: 'blobs/sha256/evil', type: 'symlink', linkname: '../../../etc/shadow' },
        { name: 'evil', type: 'hardlink', linkname: '../outside' },
      ];
      for (const l of links) await assert.rejects(inspect(makeTar([...oci.entries, l])), rejectsWith('TAR_LINK_ESCAPE'), l.linkname);
    });

    it('a blob whose content does not match its name is IMAGE_BLOB_DIGEST_MISMATCH', async () => {
      const tampered = withData(oci.entries, layer0, gzipSync('evil layer'));
      await assert.rejects(inspect(makeTar(tampered)), rejectsWith('IMAGE_BLOB_DIGEST_MISMATCH'));
      // Even a blob nothing references must be what its name says.
      const stray: TarSpec = { name: `blobs/sha256/${sha('a')}`, data: 'b' };
      await assert.rejects(inspect(makeTar([...oci.entries, stray])), rejectsWith('IMAGE_BLOB_DIGEST_MISMATCH'));
      await assert.rejects(inspect(makeTar([...oci.entries, { name: 'blobs/sha256/not-a-digest', data: 'b' }])), rejectsWith('IMAGE_BLOB_DIGEST_MISMATCH'));
    });

    it('sha512 blobs are verified too', async () => {
      const sha512 = (b: string) => createHash('sha512').update(b).digest('hex');
      const good: TarSpec = { name: `blobs/sha512/${sha512('x')}`, data: 'x' };
      assert.equal((await inspect(makeTar([...oci.entries, good]))).images.length, 1);
      const bad: TarSpec = { name: `blobs/sha512/${sha512('x')}`, data: 'y' };
      await assert.rejects(inspect(makeTar([...oci.entries, bad])), rejectsWith('IMAGE_BLOB_DIGEST_MISMATCH'));
    });

    it('a blob that is a link to other content is IMAGE_BLOB_DIGEST_MISMATCH', async () => {
      const tampered = [...without(oci.entries, layer0), { name: layer0, type: 'symlink', linkname: '../../oci-layout' }];
      await assert.rejects(inspect(makeTar(tampered)), rejectsWith('IMAGE_BLOB_DIGEST_MISMATCH'));
    });

    it('a descriptor size that disagrees with the blob is IMAGE_BLOB_DIGEST_MISMATCH', async () => {
      const index = JSON.parse(String(oci.entries.find((e) => e.name === 'index.json')!.data));
      index.manifests[0].size += 1;
      await assert.rejects(inspect(makeTar(withData(oci.entries, 'index.json', JSON.stringify(index)))), rejectsWith('IMAGE_BLOB_DIGEST_MISMATCH'));
    });

    it('missing manifest, config or layer blobs are IMAGE_BLOB_MISSING', async () => {
      const e = oci.expected[0]!;
      for (const d of [e.manifestDigest!, e.configDigest, e.layers[1]!.digest]) {
        await assert.rejects(inspect(makeTar(without(oci.entries, blobName(d)))), rejectsWith('IMAGE_BLOB_MISSING'), d);
      }
    });

    it('docker-archive: missing layer or config is IMAGE_BLOB_MISSING', async () => {
      for (const name of [docker.entries.find((x) => x.name.endsWith('/layer.tar'))!.name, docker.entries.find((x) => x.name.endsWith('.json'))!.name]) {
        await assert.rejects(inspect(makeTar(without(docker.entries, name))), rejectsWith('IMAGE_BLOB_MISSING'), name);
      }
    });

    it('docker-archive: config not matching its <sha256>.json name is IMAGE_BLOB_DIGEST_MISMATCH', async () => {
      const cfgName = docker.entries.find((x) => /^[0-9a-f]{64}\.json$/.test(x.name))!.name;
      const cfg = JSON.parse(String(docker.entries.find((x) => x.name === cfgName)!.data));
      cfg.config.Cmd = ['/bin/evil'];
      await assert.rejects(inspect(makeTar(withData(docker.entries, cfgName, JSON.stringify(cfg)))), rejectsWith('IMAGE_BLOB_DIGEST_MISMATCH'));
    });

    it('docker-archive: manifest.json paths escaping the archive are IMAGE_METADATA_INVALID', async () => {
      const m = JSON.parse(String(docker.entries.find((e) => e.name === 'manifest.json')!.data));
      m[0].Layers[0] = '../../etc/passwd';
      await assert.rejects(inspect(makeTar(withData(docker.entries, 'manifest.json', JSON.stringify(m)))), rejectsWith('IMAGE_METADATA_INVALID'));
    });

    it('broken metadata is IMAGE_METADATA_INVALID', async () => {
      await assert.rejects(inspect(makeTar(withData(oci.entries, 'index.json', '{"manifests": 3}'))), rejectsWith('IMAGE_METADATA_INVALID'));
      await assert.rejects(inspect(makeTar(withData(oci.entries, 'index.json', '{not json'))), rejectsWith('IMAGE_METADATA_INVALID'));
      await assert.rejects(inspect(makeTar(withData(docker.entries, 'manifest.json', '[{"Config": 1}]'))), rejectsWith('IMAGE_METADATA_INVALID'));
    });

    it('a link loop is IMAGE_METADATA_INVALID, not a hang', async () => {
      const m = JSON.parse(String(docker.entries.find((e) => e.name === 'manifest.json')!.data));
      m[0].Layers[0] = 'loop/a';
      const loop: TarSpec[] = [
        { name: 'loop/a', type: 'symlink', linkname: 'b' },
        { name: 'loop/b', type: 'symlink', linkname: 'a' },
      ];
      await assert.rejects(inspect(makeTar([...withData(docker.entries, 'manifest.json', JSON.stringify(m)), ...loop])), rejectsWith('IMAGE_METADATA_INVALID'));
    });

    it('closes the source when it rejects a tar early (plain and gzipped)', async () => {
      const bad = makeTar([{ name: '../evil', data: 'x' }, ...oci.entries]);
      for (const tar of [bad, gzipSync(bad)]) {
        let closed = false;
        const source = (async function* () {
          try {
            yield* pieces(tar, 512);
          } finally {
            closed = true;
          }
        })();
        await assert.rejects(inspectImageTar(source), rejectsWith('TAR_PATH_ESCAPE'));
        assert.ok(closed);
      }
    });

    it('a tar that is not an image archive is IMAGE_FORMAT_UNKNOWN', async () => {
      await assert.rejects(inspect(makeTar([{ name: 'bin/kubectl', data: 'ELF' }])), rejectsWith('IMAGE_FORMAT_UNKNOWN'));
    });
  });
});
