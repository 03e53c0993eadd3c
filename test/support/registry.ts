/**
 * Helpers for registry tests: image bundles committed straight into a
 * controller, multi-platform OCI layouts, client certificate directories
 * for skopeo/curl, certificates with chosen validity or from another CA,
 * and an HTTPS client that sends raw request lines.
 */
import * as x509 from '@peculiar/x509';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { connect } from 'node:tls';
import { toImages } from '../../common/src/bundle/builder.js';
import { inspectImageTar } from '../../common/src/bundle/image-tar.js';
import type { BundleImage, RewriteRule } from '../../common/src/bundle/manifest.js';
import { EC_ALG, exportPrivateKeyPem, generateKeyPair, importPrivateKeyPem, randomSerial } from '../../common/src/pki.js';
import type { Controller } from '../../controller/src/controller.js';
import { buildImage, type BuiltImage, type ImageSpec } from '../e2e/harness/oci-image.js';
import { buildTar } from '../e2e/harness/tar.js';
import { memBundle, type MemBundle } from './bundles.js';
import { waitFor } from './fixtures.js';
import { daemon, type Daemon } from './proc.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Builds a bundle holding `files` (image tars under images/ are inspected) and commits it into `c` directly. */
export async function commitImageBundle(c: Controller, name: string, version: string, files: Record<string, Buffer>, privatePem: string,
  rewrites: RewriteRule[] = []): Promise<MemBundle> {
  const images: BundleImage[] = [];
  for (const [path, data] of Object.entries(files)) {
    if (path.startsWith('images/')) images.push(...toImages(path, await inspectImageTar(Readable.from([data]), { skipMissingPlatforms: true })));
  }
  const b = memBundle(name, version, files, privatePem, { images, rewrites });
  for (const [d, bytes] of b.chunks) await c.ctx.bundles.chunks.put(d, bytes);
  await c.ctx.bundles.commit(b.signed);
  return b;
}

/** A multi-platform image: platform manifests, an index (OCI or docker manifest list) and its tar. */
export interface MultiImage {
  ref: string;
  images: BuiltImage[];
  manifests: Buffer[];
  index: Buffer;
  indexDigest: string;
  tar: Buffer;
}

/**
 * An OCI layout whose index.json names one image index (`docker: true`: a
 * docker manifest list with docker media types) over `specs`' platforms.
 * `omit` leaves a platform's manifest out of the tar (a partial export).
 */
export function multiPlatformTar(ref: string, specs: ImageSpec[], opts: { docker?: boolean; omit?: number } = {}): MultiImage {
  const images = specs.map(buildImage);
  const types = opts.docker
    ? { list: 'application/vnd.docker.distribution.manifest.list.v2+json', manifest: 'application/vnd.docker.distribution.manifest.v2+json', config: 'application/vnd.docker.container.image.v1+json', layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }
    : { list: 'application/vnd.oci.image.index.v1+json', manifest: 'application/vnd.oci.image.manifest.v1+json', config: 'application/vnd.oci.image.config.v1+json', layer: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  // Pretty-printed on purpose: served bytes must be these, not a re-serialisation.
  const manifests = images.map((img) => Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: types.manifest,
    config: { mediaType: types.config, digest: img.configDigest, size: img.config.length },
    layers: img.layers.map((l, i) => ({ mediaType: types.layer, digest: img.layerDigests[i], size: l.length })),
  }, null, 2)));
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: types.list,
    manifests: images.map((img, i) => ({ mediaType: types.manifest, digest: sha(manifests[i]!), size: manifests[i]!.length, platform: { architecture: img.architecture, os: img.os } })),
  }, null, 3));
  const indexDigest = sha(index);
  const blobs = new Map<string, Buffer>([[indexDigest, index]]);
  images.forEach((img, i) => {
    if (i !== opts.omit) blobs.set(sha(manifests[i]!), manifests[i]!);
    blobs.set(img.configDigest, img.config);
    img.layers.forEach((l, j) => blobs.set(img.layerDigests[j]!, l));
  });
  const tag = ref.slice(ref.lastIndexOf(':') + 1);
  const top = { schemaVersion: 2, manifests: [{ mediaType: types.list, digest: indexDigest, size: index.length, annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': tag } }] };
  const tar = buildTar([
    { path: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    { path: 'index.json', content: JSON.stringify(top) },
    ...[...blobs].map(([d, data]) => ({ path: `blobs/sha256/${d.slice(7)}`, content: data })),
  ]);
  return { ref, images, manifests, index, indexDigest, tar };
}

/** A client certificate: PEMs of the certificate, its key, and the CA that should verify the server. */
export interface ClientCert { certPem: string; keyPem: string; caPem: string }

/**
 * A certificate signed by the CA in `pkiDir` (ca.crt/ca.key), with any
 * validity: for expired certificates, and (with another directory) for a
 * foreign CA. Names it as an agent (OU=agent) with CN `cn`.
 */
export async function signedCert(pkiDir: string, cn: string, notBefore: Date, notAfter: Date, role = 'agent'): Promise<{ certPem: string; keyPem: string }> {
  const caPem = readFileSync(join(pkiDir, 'ca.crt'), 'utf8');
  const caKey = await importPrivateKeyPem(readFileSync(join(pkiDir, 'ca.key'), 'utf8'));
  const caCert = new x509.X509Certificate(caPem);
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(), subject: `CN=${cn}, OU=${role}, O=Ferry`, issuer: caCert.subject, notBefore, notAfter,
    signingAlgorithm: EC_ALG, publicKey: keys.publicKey, signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/** A directory as skopeo's --cert-dir wants it (ca.crt, client.cert, client.key); also holds the files for curl. */
export function certDir(dir: string, c: ClientCert | { caPem: string }): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ca.crt'), c.caPem);
  if ('certPem' in c) {
    writeFileSync(join(dir, 'client.cert'), c.certPem);
    writeFileSync(join(dir, 'client.key'), c.keyPem, { mode: 0o600 });
  }
  return dir;
}

/** A parsed HTTP response. */
export interface RawResponse { status: number; headers: Record<string, string>; body: Buffer; complete: boolean }

/**
 * Sends `head` (request line and headers, without the blank line) over TLS
 * exactly as written — hostile paths are not normalised — with
 * `Connection: close`, and parses the answer. `complete` is false when the
 * body is shorter than Content-Length (the server aborted it).
 */
export function rawRequest(port: number, c: ClientCert | { caPem: string }, head: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = connect({
      host: '127.0.0.1', port, servername: 'localhost', ca: c.caPem,
      ...('certPem' in c ? { cert: c.certPem, key: c.keyPem } : {}),
    }, () => s.write(`${head}\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`, 'latin1'));
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', (e) => (parts.length ? undefined : reject(e)));
    s.on('close', () => {
      const all = Buffer.concat(parts);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no HTTP response: ${all.toString('latin1').slice(0, 200)}`));
      const lines = all.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(lines[0]!.split(' ')[1]);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      const body = all.subarray(end + 4);
      const len = headers['content-length'] === undefined ? body.length : Number(headers['content-length']);
      resolve({ status, headers, body: body.subarray(0, len), complete: body.length >= len });
    });
  });
}

/** GET (or another method) of `path` with extra header lines. */
export function request(port: number, c: ClientCert | { caPem: string }, path: string, headers: string[] = [], method = 'GET'): Promise<RawResponse> {
  return rawRequest(port, c, [`${method} ${path} HTTP/1.1`, ...headers].join('\r\n'));
}

/** The `errors[0].code` of a JSON error body (asserting it is the spec's JSON shape). */
export function errorCode(r: RawResponse): string {
  if (!/^application\/json/.test(r.headers['content-type'] ?? '')) throw new Error(`error response is ${r.headers['content-type']}, not JSON: ${r.body.toString().slice(0, 200)}`);
  const doc = JSON.parse(r.body.toString()) as { errors: Array<{ code: string; message: string }> };
  return doc.errors[0]!.code;
}

/** The controller's ferry_registry_* samples from /metrics: the one count of pulls. */
export interface RegistryCounts {
  /** One series, e.g. `ferry_registry_errors_total{code="UNAUTHORIZED"}`; 0 while it has no sample. */
  get(series: string): number;
  /** The sum of every series of metric `name`. */
  sum(name: string): number;
}

/** Scrapes `c`'s /metrics registry for the registry's counters. */
export async function registryCounts(c: Controller): Promise<RegistryCounts> {
  const { body } = await c.metrics.scrape();
  const values = new Map<string, number>();
  for (const line of body.split('\n')) {
    const m = /^(ferry_registry_\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    // Every series also names its replica (docs/ha.md); the tests ask for one controller's series without it.
    if (m) values.set(m[1]!.replace(/,?replica="[^"]*"/, '').replace('{,', '{').replace('{}', ''), Number(m[2]));
  }
  return {
    get: (series) => values.get(series) ?? 0,
    sum: (name) => [...values].filter(([k]) => k === name || k.startsWith(`${name}{`)).reduce((s, [, v]) => s + v, 0),
  };
}

/**
 * A containerd of the test's own under `dir` (root, state and sockets there,
 * no CRI plugin), with `extra` config lines; resolves once its socket exists.
 */
export async function startPrivateContainerd(dir: string, extra: string[] = []): Promise<Daemon> {
  writeFileSync(join(dir, 'config.toml'), [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]', `  address = "${join(dir, 'containerd.sock')}"`,
    '[ttrpc]', `  address = "${join(dir, 'containerd.sock.ttrpc')}"`,
    '[debug]', '  address = ""',
    ...extra,
    '',
  ].join('\n'));
  const containerd = daemon(['containerd', '--config', join(dir, 'config.toml')]);
  await waitFor(() => existsSync(join(dir, 'containerd.sock')), 20_000, 'containerd socket');
  return containerd;
}
