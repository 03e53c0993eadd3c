import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { assertSafeBundlePath, buildManifest, locateChunks, readChunk, walkBundle } from '../../../common/src/bundle/builder.js';
import { FerryError } from '../../../common/src/errors.js';
import { imageTar } from '../../fixtures/bundles/fixtures.js';
import { makeOciLayout, makeTar } from './make-image-tar.js';
import { seededBytes } from './prng.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const NOW = new Date('2026-01-11T00:00:00Z');

function rejectsWith(code: string, text: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof FerryError, `expected FerryError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, text);
    assert.ok(e.hint && e.hint.length > 0);
    return true;
  };
}

describe('bundle/builder', () => {
  let dir: string;
  let outside: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-build-'));
    outside = await mkdtemp(join(tmpdir(), 'ferry-outside-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  async function put(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), data);
    await chmod(join(dir, path), mode);
  }

  it('lists regular files sorted, with modes (setuid/sticky stripped), sizes, sha256 and chunks', async () => {
    const big = seededBytes(3 * 1024 * 1024, 7);
    await put('bin/k3s', big, 0o4755);
    await put('manifests/b.yaml', 'b: 1\n');
    await put('manifests/a.yaml', 'a: 1\n', 0o1644);
    await put('Zeta', 'upper case sorts first in byte order');
    await mkdir(join(dir, 'empty-dir'));
    const m = await buildManifest(dir, { name: 'demo', version: '1.0.0', arch: ['amd64'], now: NOW });
    assert.deepEqual(m.files.map((f) => [f.path, f.mode]), [['Zeta', 0o644], ['bin/k3s', 0o755], ['manifests/a.yaml', 0o644], ['manifests/b.yaml', 0o644]]);
    const k3s = m.files[1]!;
    assert.equal(k3s.size, big.length);
    assert.equal(k3s.sha256, sha(big));
    assert.ok(k3s.chunks.length >= 2, 'a 3 MiB file has several ~1 MiB chunks');
    assert.equal(k3s.chunks.reduce((n, c) => n + c.size, 0), big.length);
    assert.deepEqual({ ...m, files: [], images: [] }, {
      schema: 'ferry.bundle/v1', name: 'demo', version: '1.0.0', arch: ['amd64'], createdAt: NOW.toISOString(), files: [], images: [], rewrites: [],
    });
  });

  it('inspects image tars under images/ (docker-archive, OCI, gzip) and tars elsewhere that are images', async () => {
    await put('images/docker.io-kubeedge-cloudcore-v1.22.0.tar', imageTar('docker.io/kubeedge/cloudcore:v1.22.0'));
    await put('images/nested/pause.tar.gz', gzipSync(imageTar('registry.k8s.io/pause:3.10', true)));
    const arm = makeOciLayout([{ ref: 'docker.io/library/busybox:1.37', arch: 'arm64', layers: [{ a: 'b' }] }]);
    await put('extra/busybox-arm64.tar', makeTar(arm.entries));
    await put('helm-charts/not-an-image.tgz', gzipSync(makeTar([{ name: 'chart/Chart.yaml', data: 'name: chart' }])));
    const m = await buildManifest(dir, { name: 'x', version: '1' });
    assert.deepEqual(m.images.map((i) => [i.file, i.format, i.refs, i.platform.architecture]), [
      ['extra/busybox-arm64.tar', 'oci', ['docker.io/library/busybox:1.37'], 'arm64'],
      ['images/docker.io-kubeedge-cloudcore-v1.22.0.tar', 'docker-archive', ['docker.io/kubeedge/cloudcore:v1.22.0'], 'amd64'],
      ['images/nested/pause.tar.gz', 'oci', ['registry.k8s.io/pause:3.10'], 'amd64'],
    ]);
    assert.match(m.images[1]!.manifestDigest, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(m.arch, ['amd64', 'arm64'], 'arch defaults to the images\' architectures');
    // The one-pass chunking of image tars gives the same result as chunking them alone.
    const tarFile = m.files.find((f) => f.path === 'images/nested/pause.tar.gz')!;
    assert.equal(tarFile.sha256, sha(await readFile(join(dir, tarFile.path))));
  });

  it('the manifest is the same whether files are chunked on this thread or by 1 or 3 worker threads', async () => {
    await put('images/docker.io-kubeedge-cloudcore-v1.22.0.tar', imageTar('docker.io/kubeedge/cloudcore:v1.22.0'));
    await put('images/nested/pause.tar.gz', gzipSync(imageTar('registry.k8s.io/pause:3.10', true)));
    for (let i = 0; i < 5; i++) await put(`bin/tool-${i}`, seededBytes((i + 1) * 700 * 1024, 40 + i));
    await put('empty', '');
    const inThread = await buildManifest(dir, { name: 'x', version: '1', now: NOW, workers: 0 });
    assert.equal(inThread.files.length, 8);
    assert.deepEqual(await buildManifest(dir, { name: 'x', version: '1', now: NOW, workers: 1 }), inThread);
    assert.deepEqual(await buildManifest(dir, { name: 'x', version: '1', now: NOW, workers: 3 }), inThread);
  });

  it('a broken image tar is refused the same way by a worker thread and on this thread', async () => {
    await put('bin/ok', seededBytes(2 << 20, 9));
    await put('images/broken.tar', Buffer.alloc(2048, 1));
    for (const workers of [0, 2]) {
      await assert.rejects(buildManifest(dir, { name: 'x', version: '1', arch: ['amd64'], workers }), rejectsWith('TAR_MALFORMED', /^images\/broken\.tar: /));
    }
  });

  it('refuses a broken image tar under images/, naming it', async () => {
    await put('images/broken.tar', Buffer.alloc(2048, 1));
    await assert.rejects(buildManifest(dir, { name: 'x', version: '1', arch: ['amd64'] }), rejectsWith('TAR_MALFORMED', /^images\/broken\.tar: /));
  });

  it('stores in-tree symlinks to files as the file; refuses links out, to dirs, dangling', async () => {
    await put('bin/k3s', 'ELF');
    await symlink('k3s', join(dir, 'bin/kubectl'));
    const m = await buildManifest(dir, { name: 'x', version: '1', arch: ['amd64'] });
    assert.deepEqual(m.files.map((f) => [f.path, f.sha256]), [['bin/k3s', sha(Buffer.from('ELF'))], ['bin/kubectl', sha(Buffer.from('ELF'))]]);

    await writeFile(join(outside, 'passwd'), 'root:x:0:0');
    await symlink(join(outside, 'passwd'), join(dir, 'bin/escape'));
    await assert.rejects(walkBundle(dir), rejectsWith('BUNDLE_INVALID', /bin\/escape is a symbolic link to .*outside the bundle directory/));
    await rm(join(dir, 'bin/escape'));
    await symlink('../../' + outside.split('/').pop() + '/passwd', join(dir, 'bin/relative-escape'));
    await assert.rejects(walkBundle(dir), rejectsWith('BUNDLE_INVALID', /relative-escape .*outside/));
    await rm(join(dir, 'bin/relative-escape'));
    await symlink('..', join(dir, 'bin/up'));
    await assert.rejects(walkBundle(dir), rejectsWith('BUNDLE_INVALID', /bin\/up is a symbolic link to a directory/));
    await rm(join(dir, 'bin/up'));
    await symlink('nope', join(dir, 'bin/dangling'));
    await assert.rejects(walkBundle(dir), rejectsWith('BUNDLE_INVALID', /bin\/dangling is a dangling symbolic link/));
  });

  it('refuses fifos, sockets and device files', async () => {
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    await assert.rejects(walkBundle(dir), rejectsWith('BUNDLE_INVALID', /^pipe is a fifo/));
    await rm(join(dir, 'pipe'));
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(join(dir, 'sock'), r));
    try {
      await assert.rejects(walkBundle(dir), rejectsWith('BUNDLE_INVALID', /^sock is a socket/));
    } finally {
      srv.close();
    }
    await rm(join(dir, 'sock'), { force: true });
    if (process.getuid?.() === 0) {
      execFileSync('mknod', [join(dir, 'null'), 'c', '1', '3']);
      await assert.rejects(walkBundle(dir), rejectsWith('BUNDLE_INVALID', /^null is a character device/));
    }
  });

  it('refuses names with backslashes or control characters', async () => {
    for (const bad of ['a\\b.yaml', 'line\nbreak', 'tab\there', 'esc\x1b[31m']) {
      const sub = await mkdtemp(join(tmpdir(), 'ferry-names-'));
      await writeFile(join(sub, bad), 'x');
      await assert.rejects(walkBundle(sub), rejectsWith('BUNDLE_INVALID', /not a safe relative path/), JSON.stringify(bad));
      await rm(sub, { recursive: true, force: true });
    }
    for (const bad of ['', '/etc/passwd', 'a/../b', './a', 'a//b', 'a/.']) assert.throws(() => assertSafeBundlePath(bad), /not a safe relative path/, bad);
  });

  it('takes name/version/arch from flags over ferry-bundle.yaml, and says what is missing', async () => {
    await put('ferry-bundle.yaml', 'name: from-file\nversion: "1.10"\narch: [arm64]\n');
    const fromFile = await buildManifest(dir);
    assert.deepEqual([fromFile.name, fromFile.version, fromFile.arch], ['from-file', '1.10', ['arm64']]);
    const flags = await buildManifest(dir, { name: 'cli', version: '2', arch: ['amd64'] });
    assert.deepEqual([flags.name, flags.version, flags.arch], ['cli', '2', ['amd64']]);
    await put('ferry-bundle.yaml', 'version: 1\n');
    await assert.rejects(buildManifest(dir), rejectsWith('INVALID_ARGUMENT', /bundle name is not set/));
    await assert.rejects(buildManifest(dir, { name: 'n', version: '1' }), rejectsWith('INVALID_ARGUMENT', /cannot tell the architecture/));
    await assert.rejects(buildManifest(dir, { name: 'n', version: '1', arch: ['x86_64'] }), rejectsWith('INVALID_ARGUMENT', /did you mean amd64/));
    await put('ferry-bundle.yaml', 'name: Bad Name\nrewrite: []\n');
    await assert.rejects(buildManifest(dir), rejectsWith('CONFIG', /ferry-bundle\.yaml:1:7: name .*\n.*ferry-bundle\.yaml:2:1: unknown key "rewrite"/));
  });

  it('locateChunks + readChunk give back every chunk\'s bytes, verified', async () => {
    const a = seededBytes(2_500_000, 3);
    await put('a.bin', a);
    await put('copy-of-a.bin', a);
    await put('small.txt', 'hello');
    await put('empty', '');
    const m = await buildManifest(dir, { name: 'x', version: '1', arch: ['amd64'] });
    const locs = locateChunks(m, dir);
    const all = new Set(m.files.flatMap((f) => f.chunks.map((c) => c.digest)));
    assert.equal(locs.size, all.size);
    for (const [digest, loc] of locs) {
      assert.notEqual(loc.path, 'copy-of-a.bin', 'shared chunks are located in the first file');
      assert.equal(sha(await readChunk(dir, loc, digest)), digest);
    }
    // A file edited after the build is caught, not shipped.
    const [digest, loc] = [...locs].find(([, l]) => l.path === 'small.txt')!;
    await put('small.txt', 'HELLO');
    await assert.rejects(readChunk(dir, loc, digest), rejectsWith('BUNDLE_INVALID', /small\.txt changed since the manifest was built/));
    await put('small.txt', 'he');
    await assert.rejects(readChunk(dir, loc), rejectsWith('BUNDLE_INVALID', /shorter than the manifest says/));
    assert.throws(() => locateChunks({ ...m, files: [{ ...m.files[0]!, path: '../etc/passwd' }] }, dir), /not a safe relative path/);
  });
});
