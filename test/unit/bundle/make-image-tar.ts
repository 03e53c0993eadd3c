/**
 * Test helper: build tars, OCI image layouts and docker-archives in memory, so image-tar tests
 * never download or `docker save` anything. Builders return the entry list (so a test can
 * tamper with it before `makeTar`) and what inspection is expected to report.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

/** One entry for {@link makeTar}. Nothing is validated: hostile names are the point. */
export interface TarSpec {
  name: string;
  /** `'file'` (default), `'dir'`, `'symlink'`, `'hardlink'`, or a raw typeflag character. */
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | string;
  data?: Buffer | string;
  linkname?: string;
  mode?: number;
  /** How to store a name longer than 100 bytes. Default `'pax'`. */
  longName?: 'pax' | 'gnu' | 'prefix';
}

const TYPEFLAG: Record<string, string> = { file: '0', dir: '5', symlink: '2', hardlink: '1' };
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function header(name: string, typeflag: string, size: number, opts: { mode?: number; linkname?: string; prefix?: string; gnu?: boolean }): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(((opts.mode ?? 0o644) & 0o7777).toString(8).padStart(7, '0') + '\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write('14712345670\0', 136, 'latin1');
  h.write(typeflag, 156, 'latin1');
  h.write(opts.linkname ?? '', 157, 100, 'utf8');
  h.write(opts.gnu ? 'ustar  \0' : 'ustar\x0000', 257, 'latin1');
  if (opts.prefix) h.write(opts.prefix, 345, 155, 'utf8');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bytes = (s: string) => Buffer.byteLength(s);
  let len = bytes(body) + 1;
  while (bytes(`${len}${body}`) !== len) len = bytes(`${len}${body}`);
  return `${len}${body}`;
}

/** The blocks of one entry (including any pax / GNU long-name records it needs). */
export function tarEntry(e: TarSpec): Buffer {
  const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
  const typeflag = TYPEFLAG[e.type ?? 'file'] ?? e.type!;
  const out: Buffer[] = [];
  let name = e.name;
  let linkname = e.linkname;
  let prefix: string | undefined;
  const long = Buffer.byteLength(name) > 100 || Buffer.byteLength(linkname ?? '') > 100;
  if (long && (e.longName ?? 'pax') === 'pax') {
    const pax = paxRecord('path', name) + (linkname ? paxRecord('linkpath', linkname) : '');
    out.push(header('PaxHeaders/x', 'x', Buffer.byteLength(pax), {}), padded(Buffer.from(pax)));
    name = name.slice(0, 99);
    linkname = linkname?.slice(0, 99);
  } else if (long && e.longName === 'gnu') {
    if (Buffer.byteLength(name) > 100) {
      out.push(header('././@LongLink', 'L', Buffer.byteLength(name) + 1, { gnu: true }), padded(Buffer.from(name + '\0')));
    }
    if (linkname && Buffer.byteLength(linkname) > 100) {
      out.push(header('././@LongLink', 'K', Buffer.byteLength(linkname) + 1, { gnu: true }), padded(Buffer.from(linkname + '\0')));
      linkname = linkname.slice(0, 99);
    }
    name = name.slice(0, 99);
  } else if (long && e.longName === 'prefix') {
    const cut = name.lastIndexOf('/', 155);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  out.push(header(name, typeflag, data.length, { mode: e.mode, linkname, prefix, gnu: e.longName === 'gnu' }));
  out.push(padded(data));
  return Buffer.concat(out);
}

/** A complete archive: entries, then `endBlocks` zero blocks (2 = standard). */
export function makeTar(entries: TarSpec[], endBlocks = 2): Buffer {
  return Buffer.concat([...entries.map(tarEntry), Buffer.alloc(512 * endBlocks)]);
}

/** A filesystem layer: an uncompressed tar of `files` and its gzip. */
export function makeLayer(files: Record<string, string>): { tar: Buffer; gz: Buffer; diffId: string } {
  const tar = makeTar(Object.entries(files).map(([name, data]) => ({ name, data })));
  return { tar, gz: gzipSync(tar), diffId: `sha256:${sha(tar)}` };
}

/** What a test image consists of. */
export interface ImageSpec {
  ref?: string;
  os?: string;
  arch?: string;
  variant?: string;
  layers: Array<Record<string, string>>;
}

/** What inspection should report for an image (subset of ImageInfo). */
export interface ExpectedImage {
  refs: string[];
  platform: { os: string; architecture: string; variant?: string };
  configDigest: string;
  manifestDigest?: string;
  layers: Array<{ digest: string; size: number; mediaType: string }>;
  diffIds: string[];
  totalSize: number;
}

function configFor(img: ImageSpec, diffIds: string[]): Buffer {
  const cfg: Record<string, unknown> = { architecture: img.arch ?? 'amd64', os: img.os ?? 'linux' };
  if (img.variant) cfg.variant = img.variant;
  cfg.config = { Cmd: ['/bin/sh'] };
  cfg.rootfs = { type: 'layers', diff_ids: diffIds };
  return Buffer.from(JSON.stringify(cfg));
}

function platformOf(img: ImageSpec): ExpectedImage['platform'] {
  return { os: img.os ?? 'linux', architecture: img.arch ?? 'amd64', ...(img.variant ? { variant: img.variant } : {}) };
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const GZ_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/**
 * OCI image layout. With `multiPlatform`, all images go into one image index (plus a buildkit
 * attestation manifest that must be skipped) under the first image's ref.
 */
export function makeOciLayout(
  images: ImageSpec[],
  opts: { multiPlatform?: boolean; annotations?: 'docker' | 'oci' } = {},
): { entries: TarSpec[]; expected: ExpectedImage[]; blobs: Map<string, Buffer> } {
  const blobs = new Map<string, Buffer>();
  const add = (b: Buffer) => {
    const d = `sha256:${sha(b)}`;
    blobs.set(d, b);
    return { digest: d, size: b.length };
  };
  const expected: ExpectedImage[] = [];
  const manifests = images.map((img) => {
    const layers = img.layers.map(makeLayer);
    const layerDescs = layers.map((l) => ({ mediaType: GZ_LAYER, ...add(l.gz) }));
    const cfg = add(configFor(img, layers.map((l) => l.diffId)));
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg };
    const manifest = add(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: layerDescs })));
    expected.push({
      refs: opts.multiPlatform ? (images[0]!.ref ? [images[0]!.ref] : []) : img.ref ? [img.ref] : [],
      platform: platformOf(img),
      configDigest: cfg.digest,
      manifestDigest: manifest.digest,
      layers: layerDescs.map((l) => ({ digest: l.digest, size: l.size, mediaType: GZ_LAYER })),
      diffIds: layers.map((l) => l.diffId),
      totalSize: cfg.size + layerDescs.reduce((n, l) => n + l.size, 0),
    });
    return { mediaType: OCI_MANIFEST, ...manifest, platform: { architecture: img.arch ?? 'amd64', os: img.os ?? 'linux' } };
  });
  // 'docker' mimics Docker 25+: full ref for containerd, bare tag as ref.name. 'oci' mimics
  // skopeo/buildah: only ref.name, holding the full ref.
  const annotate = (ref?: string) =>
    !ref
      ? {}
      : (opts.annotations ?? 'docker') === 'docker'
        ? { annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.split(':').at(-1)! } }
        : { annotations: { 'org.opencontainers.image.ref.name': ref } };
  let top: object[];
  if (opts.multiPlatform) {
    const attestation = {
      mediaType: OCI_MANIFEST,
      digest: `sha256:${sha('not in the tar')}`,
      size: 1,
      platform: { architecture: 'unknown', os: 'unknown' },
      annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
    };
    const index = add(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [...manifests, attestation] })));
    top = [{ mediaType: OCI_INDEX, ...index, ...annotate(images[0]?.ref) }];
  } else {
    top = manifests.map(({ platform: _p, ...m }, i) => ({ ...m, ...annotate(images[i]!.ref) }));
  }
  const entries: TarSpec[] = [
    { name: 'blobs', type: 'dir' },
    { name: 'blobs/sha256', type: 'dir' },
    ...[...blobs].map(([d, b]) => ({ name: `blobs/sha256/${d.slice(7)}`, data: b })),
    { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: top }) },
    { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
  ];
  return { entries, expected, blobs };
}

/**
 * docker-archive as `docker save` wrote it before Docker 25: `<id>/layer.tar`, `<hex>.json`
 * config, manifest.json and repositories. With `shareLayers`, a layer already written for an
 * earlier image is stored as a symlink `../<id>/layer.tar`, as docker does.
 */
export function makeDockerArchive(images: ImageSpec[], opts: { shareLayers?: boolean } = {}): { entries: TarSpec[]; expected: ExpectedImage[] } {
  const entries: TarSpec[] = [];
  const written = new Map<string, string>(); // diffId -> layer dir
  const manifest: object[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const expected: ExpectedImage[] = [];
  images.forEach((img, n) => {
    const layers = img.layers.map(makeLayer);
    const paths = layers.map((l, i) => {
      const id = sha(`${n}/${i}/${l.diffId}`);
      const prev = written.get(l.diffId);
      entries.push({ name: id, type: 'dir' }, { name: `${id}/VERSION`, data: '1.0' });
      if (opts.shareLayers && prev) entries.push({ name: `${id}/layer.tar`, type: 'symlink', linkname: `../${prev}/layer.tar` });
      else entries.push({ name: `${id}/layer.tar`, data: l.tar });
      written.set(l.diffId, written.get(l.diffId) ?? id);
      return `${id}/layer.tar`;
    });
    const cfg = configFor(img, layers.map((l) => l.diffId));
    entries.push({ name: `${sha(cfg)}.json`, data: cfg });
    manifest.push({ Config: `${sha(cfg)}.json`, RepoTags: img.ref ? [img.ref] : null, Layers: paths });
    if (img.ref) {
      const [repo, tag] = [img.ref.slice(0, img.ref.lastIndexOf(':')), img.ref.slice(img.ref.lastIndexOf(':') + 1)];
      (repositories[repo] ??= {})[tag] = paths.at(-1)!.split('/')[0]!;
    }
    const layerInfo = layers.map((l) => ({ digest: `sha256:${sha(l.tar)}`, size: l.tar.length, mediaType: 'application/vnd.oci.image.layer.v1.tar' }));
    expected.push({
      refs: img.ref ? [img.ref] : [],
      platform: platformOf(img),
      configDigest: `sha256:${sha(cfg)}`,
      layers: layerInfo,
      diffIds: layers.map((l) => l.diffId),
      totalSize: cfg.length + layerInfo.reduce((s, l) => s + l.size, 0),
    });
  });
  entries.push({ name: 'manifest.json', data: JSON.stringify(manifest) }, { name: 'repositories', data: JSON.stringify(repositories) });
  return { entries, expected };
}
