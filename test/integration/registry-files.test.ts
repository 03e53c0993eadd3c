import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { CertificateAuthority } from '../../controller/src/pki/ca.js';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { loadControllerConfig } from '../../controller/src/config.js';
import { Controller } from '../../controller/src/controller.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { buildImage, ociArchive } from '../e2e/harness/oci-image.js';
import { cleanup, enrollAgent, tempDir, type TestAgent } from '../support/fixtures.js';
import { repoRoot, run } from '../support/proc.js';
import { certDir, commitImageBundle, errorCode, registryCounts, request, signedCert, type ClientCert } from '../support/registry.js';

const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const DAY = 86_400_000;

describe('registry: files repository (curl, wget), who may pull, damaged chunks, removal', function () {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  let port: number;
  let agent: TestAgent;
  let cert: ClientCert;
  let dir: string;
  const logs: string[] = [];
  const key = generateSigningKey();
  const kubeadm = randomBytes(3 << 20);
  const files = {
    'k8s/dl.k8s.io/release/v1.30.4/bin/linux/amd64/kubeadm': kubeadm,
    'k8s/github.com/containerd/nerdctl/nerdctl-1.7.tgz': randomBytes(5000),
    'k8s/empty': Buffer.alloc(0),
    'bad/middle.bin': randomBytes(9 << 20), // chunks are at most 4 MiB: always three or more
    'bad/first.bin': randomBytes(2 << 20),
    'images/app.tar': ociArchive([buildImage({ ref: 'ferry/app:2.0', architecture: 'amd64', layers: [[{ path: 'app', content: randomBytes(3 << 20) }]] })]),
  };
  const base = '/files/site/1.0';
  const curl = (...args: string[]) => run(['curl', '-sS', '--cacert', join(dir, 'ca.crt'), '--cert', join(dir, 'client.cert'), '--key', join(dir, 'client.key'), ...args]);
  const url = (p: string) => `https://localhost:${port}${p}`;

  before(async () => {
    const sink = new Writable({ write(chunk, _e, cb) { logs.push(String(chunk)); cb(); } });
    const cfg = loadControllerConfig({ data: tempDir(), listen: '127.0.0.1:0', 'registry-addr': '127.0.0.1:0' }, undefined, {});
    c = await Controller.start(cfg, pino({ level: 'info' }, sink));
    port = c.registry!.port;
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    agent = await enrollAgent(c, 'files-host', { start: false });
    cert = { certPem: readFileSync(agent.state.certPath, 'utf8'), keyPem: readFileSync(agent.state.keyPath, 'utf8'), caPem: c.ctx.ca.certPem };
    dir = certDir(join(tempDir(), 'certs'), cert);
    await commitImageBundle(c, 'site', '1.0', files, key.privatePem);
    await admin.call(admin.client.publishBundle, { name: 'site', version: '1.0', as: [], anonymous: false });
  });
  after(async () => { admin.close(); await cleanup(c, [agent]); });

  it('curl downloads a file whole and by Range; ETag, Last-Modified and If-None-Match answer 304', async () => {
    const path = `${base}/k8s/dl.k8s.io/release/v1.30.4/bin/linux/amd64/kubeadm`;
    const out = join(tempDir(), 'kubeadm');
    const whole = await curl('-o', out, '-D', '-', url(path));
    assert.equal(whole.code, 0, whole.stderr);
    assert.equal(hex(readFileSync(out)), hex(kubeadm));
    assert.match(whole.stdout, new RegExp(`etag: "${hex(kubeadm)}"`, 'i'));
    assert.match(whole.stdout, /last-modified: \w{3}, \d\d \w{3} \d{4}/i);
    const part = join(tempDir(), 'part');
    const ranged = await curl('-r', '1048000-1049999', '-o', part, '-w', '%{http_code}', url(path));
    assert.equal(ranged.stdout, '206');
    assert.ok(readFileSync(part).equals(kubeadm.subarray(1_048_000, 1_050_000)));
    const cached = await curl('-o', '/dev/null', '-w', '%{http_code}', '-H', `If-None-Match: "${hex(kubeadm)}"`, url(path));
    assert.equal(cached.stdout, '304');
    const stale = await curl('-o', '/dev/null', '-w', '%{http_code}', '-H', `If-None-Match: "${'0'.repeat(64)}"`, url(path));
    assert.equal(stale.stdout, '200');
    const empty = await curl('-o', '/dev/null', '-w', '%{http_code} %{size_download}', url(`${base}/k8s/empty`));
    assert.equal(empty.stdout, '200 0');
  });

  it('answers HTTP/1.1 also to a client offering h2 (h2 was measured slower), with the same bytes, refusals and JSON errors', async () => {
    const path = `${base}/k8s/dl.k8s.io/release/v1.30.4/bin/linux/amd64/kubeadm`;
    for (const flag of ['--http2', '--http1.1']) {
      const out = join(tempDir(), 'part');
      // A range across chunk boundaries: the pooled read-ahead path.
      const ranged = await curl(flag, '-r', '1000-2999999', '-o', out, '-w', '%{http_version} %{http_code}', url(path));
      assert.equal(ranged.stdout, '1.1 206', ranged.stderr);
      assert.ok(readFileSync(out).equals(kubeadm.subarray(1000, 3_000_000)));
      const missing = await curl(flag, '-o', out, '-w', '%{http_version} %{http_code} %{content_type}', url(`${base}/k8s/nothing-here`));
      assert.equal(missing.stdout, '1.1 404 application/json; charset=utf-8');
      assert.equal((JSON.parse(readFileSync(out, 'utf8')) as { errors: Array<{ code: string }> }).errors[0]!.code, 'NOT_FOUND');
      const anonymous = await run(['curl', '-sS', flag, '--cacert', join(dir, 'ca.crt'), '-o', '/dev/null', '-w', '%{http_version} %{http_code}', url(path)]);
      assert.equal(anonymous.stdout, '1.1 401');
    }
  });

  it('wget resumes a download with Range and honours If-None-Match', async () => {
    const d = tempDir();
    const target = join(d, 'kubeadm');
    writeFileSync(target, kubeadm.subarray(0, 1_500_000));
    const wget = (...a: string[]) => run(['wget', '-S', `--ca-certificate=${join(dir, 'ca.crt')}`, `--certificate=${join(dir, 'client.cert')}`,
      `--private-key=${join(dir, 'client.key')}`, ...a]);
    const r = await wget('-c', '-O', target, url(`${base}/k8s/dl.k8s.io/release/v1.30.4/bin/linux/amd64/kubeadm`));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /HTTP\/1\.1 206/);
    assert.match(r.stderr, new RegExp(`Content-Range: bytes 1500000-${kubeadm.length - 1}/${kubeadm.length}`));
    assert.equal(hex(readFileSync(target)), hex(kubeadm));
    const nm = await wget('-O', join(d, 'x'), '--header', `If-None-Match: "${hex(kubeadm)}"`, url(`${base}/k8s/dl.k8s.io/release/v1.30.4/bin/linux/amd64/kubeadm`));
    assert.match(nm.stderr, /HTTP\/1\.1 304/);
  });

  it('lists files as JSON and as plain index pages a files_repo can be browsed with', async () => {
    const listing = JSON.parse((await curl(url(`${base}/?format=json`))).stdout) as { files: Array<{ path: string; sha256: string; url: string }> };
    const kf = listing.files.find((f) => f.path.endsWith('/kubeadm'))!;
    assert.equal(kf.sha256, hex(kubeadm));
    assert.equal(kf.url, `${base}/k8s/dl.k8s.io/release/v1.30.4/bin/linux/amd64/kubeadm`);
    const page = (await curl(url(`${base}/k8s/`))).stdout;
    assert.match(page, /<a href="dl\.k8s\.io\/">dl\.k8s\.io\/<\/a>/);
    assert.match(page, /<a href="github\.com\/">/);
    const redirect = await curl('-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', url(`${base}/k8s`));
    assert.match(redirect.stdout, /^301 .*\/files\/site\/1\.0\/k8s\/$/);
    const top = JSON.parse((await curl(url('/files/'))).stdout);
    assert.deepEqual(top.bundles, [{ name: 'site', version: '1.0', url: '/files/site/1.0/' }]);
  });

  it('refuses traversal, encoded slashes, NUL and unknown paths with JSON errors', async () => {
    for (const p of [`${base}/../../../etc/passwd`, `${base}/k8s/%2e%2e/%2e%2e/x`, `${base}/k8s%2fempty`, `${base}/k8s/empty%00`, `${base}//k8s/empty`, `${base}/k8s/%zz`]) {
      const r = await request(port, cert, p);
      assert.equal(r.status, 400, `${p}: ${r.status}`);
      assert.equal(errorCode(r), 'PATH_INVALID', p);
    }
    const missing = await request(port, cert, `${base}/k8s/nope`);
    assert.equal(missing.status, 404);
    assert.equal(errorCode(missing), 'NOT_FOUND');
    const unpublished = await request(port, cert, '/files/other/1.0/x');
    assert.equal(unpublished.status, 404);
    const range = await request(port, cert, `${base}/k8s/empty`, ['Range: bytes=0-']);
    assert.equal(range.status, 416);
    assert.equal(errorCode(range), 'RANGE_INVALID');
  });

  it('no, expired, foreign-CA and revoked client certificates are refused with 401/403 JSON', async () => {
    const pki = join(c.config.dataDir, 'pki');
    const now = Date.now();
    const expired = await signedCert(pki, agent.id, new Date(now - 3 * DAY), new Date(now - DAY));
    const foreignDir = tempDir();
    await CertificateAuthority.loadOrCreate(foreignDir);
    const foreign = await signedCert(foreignDir, agent.id, new Date(now - DAY), new Date(now + DAY));
    const unknown = await signedCert(pki, 'ag-notenrolled', new Date(now - DAY), new Date(now + DAY));
    const path = `${base}/k8s/empty`;
    const cases: Array<[string, { caPem: string } | ClientCert, number, string]> = [
      ['none', { caPem: cert.caPem }, 401, 'UNAUTHORIZED'],
      ['expired', { ...expired, caPem: cert.caPem }, 401, 'UNAUTHORIZED'],
      ['foreign CA', { ...foreign, caPem: cert.caPem }, 401, 'UNAUTHORIZED'],
      ['unknown agent', { ...unknown, caPem: cert.caPem }, 403, 'DENIED'],
    ];
    for (const [what, who, status, code] of cases) {
      for (const p of [path, '/v2/', '/v2/ferry/app/manifests/2.0']) {
        const r = await request(port, who, p);
        assert.equal(r.status, status, `${what} ${p}`);
        assert.equal(errorCode(r), code, `${what} ${p}`);
      }
    }
    assert.match((await request(port, cases[1]![1], path)).body.toString(), /expired/);
    assert.equal((await request(port, cert, path)).status, 200, 'the agent itself may');
    await c.ctx.agents.revoke(agent.id, Date.now());
    const revoked = await request(port, cert, path);
    assert.equal(revoked.status, 403);
    assert.equal(errorCode(revoked), 'DENIED');
    assert.match(revoked.body.toString(), /revoked/);
    // The remaining cases use a fresh agent.
    const a2 = await enrollAgent(c, 'files-host-2', { start: false });
    cert = { certPem: readFileSync(a2.state.certPath, 'utf8'), keyPem: readFileSync(a2.state.keyPath, 'utf8'), caPem: c.ctx.ca.certPem };
    dir = certDir(join(tempDir(), 'certs2'), cert);
  });

  it('a chunk corrupt or missing on disk: 5xx JSON before the first byte, an aborted body after it, and a log naming the chunk', async () => {
    const b = (await c.ctx.bundles.get('site', '1.0'))!;
    const middle = b.manifest.files.find((f) => f.path === 'bad/middle.bin')!;
    assert.ok(middle.chunks.length >= 3, `${middle.chunks.length} chunks`);
    const bad = middle.chunks[1]!.digest;
    writeFileSync(c.ctx.bundles.chunks.pathOf(bad), randomBytes(middle.chunks[1]!.size)); // same size, other bytes
    const r = await curl('-o', join(tempDir(), 'm'), url(`${base}/bad/middle.bin`));
    assert.notEqual(r.code, 0, 'curl must not report success for a cut body');
    assert.ok(logs.some((l) => l.includes(bad) && /corrupt/.test(l)), 'the log names the corrupt chunk');

    const first = b.manifest.files.find((f) => f.path === 'bad/first.bin')!;
    const gone = first.chunks[0]!.digest;
    unlinkSync(c.ctx.bundles.chunks.pathOf(gone));
    const e = await request(port, cert, `${base}/bad/first.bin`);
    assert.equal(e.status, 500);
    assert.equal(errorCode(e), 'BLOB_UNAVAILABLE');
    assert.match(e.body.toString(), new RegExp(gone));
    assert.ok(logs.some((l) => l.includes(gone) && /missing/.test(l)));

    // The same for an image layer, through the registry.
    const app = b.manifest.files.find((f) => f.path === 'images/app.tar')!;
    for (const ch of app.chunks) unlinkSync(c.ctx.bundles.chunks.pathOf(ch.digest));
    const manifest = JSON.parse((await request(port, cert, '/v2/ferry/app/manifests/2.0')).body.toString());
    const layer = await request(port, cert, `/v2/ferry/app/blobs/${manifest.layers[0].digest}`);
    assert.equal(layer.status, 500);
    assert.equal(errorCode(layer), 'BLOB_UNAVAILABLE');
  });

  it('bundle rm refuses a published bundle without --force; with it the bundle is unpublished, removed and audited', async () => {
    const ferry = (...a: string[]) => run([process.execPath, join(repoRoot(), 'bin', 'ferry.js'), '--admin-socket', c.config.adminSocket, ...a]);
    const ls = await ferry('registry', 'ls', '--json');
    assert.equal(ls.code, 0, ls.stderr);
    const pub = JSON.parse(ls.stdout.trim().split('\n')[0]!);
    assert.equal(pub.name, 'site');
    assert.ok(pub.tags.some((t: { repository: string; tag: string }) => t.repository === 'docker.io/ferry/app' && t.tag === '2.0'));
    await assert.rejects(admin.call(admin.client.removeBundle, { name: 'site', version: '1.0', force: false }),
      (e: FerryError) => e.code === ErrorCode.InvalidArgument && /published/.test(e.message));
    const refused = await ferry('bundle', 'rm', 'site:1.0');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /--force/);
    const forced = await ferry('bundle', 'rm', 'site:1.0', '--force');
    assert.equal(forced.code, 0, forced.stderr);
    const after = await request(port, cert, '/v2/ferry/app/manifests/2.0');
    assert.equal(after.status, 404);
    assert.equal(errorCode(after), 'NAME_UNKNOWN');
    assert.equal((await request(port, cert, `${base}/k8s/empty`)).status, 404);
    const audit = await c.ctx.audit.list(20);
    assert.ok(audit.some((a) => a.action === 'registry.publish' && a.subject === 'site:1.0' && a.actor === 'local'));
    assert.ok(audit.some((a) => a.action === 'registry.unpublish' && a.subject === 'site:1.0'));
    assert.ok(audit.some((a) => a.action === 'bundle.rm' && a.subject === 'site:1.0'));
    const counts = await registryCounts(c);
    assert.ok(counts.get('ferry_registry_requests_total{kind="file",code="200"}') > 0 && counts.get('ferry_registry_errors_total{code="BLOB_UNAVAILABLE"}') >= 2);
  });
});
