/**
 * Builds container image archives in-process, for tests that import images into containerd
 * (`ctr -n k8s.io images import`) without a registry, docker or network.
 *
 * Two archive formats, the two that offline bundles carry in `images/*.tar`:
 *  - OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`), what `ctr images export`
 *    and `skopeo copy oci-archive:` write. The index annotates each manifest with
 *    `io.containerd.image.name` (full name, used by `ctr images import`) and
 *    `org.opencontainers.image.ref.name` (the tag, per the OCI spec).
 *  - docker-archive (`manifest.json` + `repositories` + `<id>/layer.tar`), what `docker save` writes.
 *
 * Output is deterministic (fixed mtimes, gzip without timestamps) so digests are stable.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { platformArch } from '../../../common/src/arch.js';
import { buildTar, type TarEntry } from './tar.js';

/** What to build. */
export interface ImageSpec {
  /** Image reference, e.g. "ferry/hello:1.0" or "docker.io/kubeedge/cloudcore:v1.19.0". */
  ref: string;
  /** Layers, bottom first; each is a list of tar entries (paths relative to the image root). */
  layers: TarEntry[][];
  /** Default: the machine's architecture in OCI terms (amd64, arm64). */
  architecture?: string;
  os?: string;
  /** OCI runtime config (Env, Entrypoint, Cmd, WorkingDir, Labels...). */
  config?: Record<string, unknown>;
  /** RFC 3339 creation time; default the epoch, for reproducible digests. */
  created?: string;
}

/** A built image: blobs plus the digests tests assert on. */
export interface BuiltImage {
  /** Normalized full reference, as `ctr images ls` shows it ("docker.io/ferry/hello:1.0"). */
  ref: string;
  architecture: string;
  os: string;
  manifest: Buffer;
  manifestDigest: string;
  config: Buffer;
  configDigest: string;
  /** gzip-compressed layers and their digests (OCI layout). */
  layers: Buffer[];
  layerDigests: string[];
  /** Uncompressed layers; their digests are the config's rootfs.diff_ids (docker-archive). */
  layerTars: Buffer[];
  diffIds: string[];
}

/** `sha256:<hex>` of some bytes. */
export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function hex(digest: string): string {
  return digest.slice('sha256:'.length);
}

/** Node's process.arch in OCI/GOARCH terms (the one mapping, common/src/arch.ts). */
export function ociArch(arch: string = process.arch): string {
  return platformArch(arch);
}

/**
 * Normalizes a reference the way containerd and docker do: no registry → docker.io, single
 * path component → library/, no tag or digest → :latest.
 */
export function normalizeRef(ref: string): string {
  let name = ref;
  const first = name.split('/')[0]!;
  const hasDomain = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!hasDomain) name = `docker.io/${name.includes('/') ? '' : 'library/'}${name}`;
  const last = name.slice(name.lastIndexOf('/') + 1);
  if (!last.includes(':') && !name.includes('@')) name += ':latest';
  return name;
}

/** The short "repo:tag" form that `docker save` puts in RepoTags (docker.io/library/ dropped). */
export function dockerRepoTag(ref: string): string {
  return normalizeRef(ref).replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

function splitTag(ref: string): { repo: string; tag: string } {
  const i = ref.lastIndexOf(':');
  return i > ref.lastIndexOf('/') ? { repo: ref.slice(0, i), tag: ref.slice(i + 1) } : { repo: ref, tag: 'latest' };
}

/** Builds an image's blobs: gzip layers, a config with rootfs.diff_ids, an OCI manifest. */
export function buildImage(spec: ImageSpec): BuiltImage {
  const architecture = spec.architecture ?? ociArch();
  const os = spec.os ?? 'linux';
  const created = spec.created ?? '1970-01-01T00:00:00Z';
  const layerTars = spec.layers.map((entries) => buildTar(entries));
  // level 9 + node's gzip header (mtime 0) makes the compressed bytes reproducible too.
  const layers = layerTars.map((t) => gzipSync(t, { level: 9 }));
  const diffIds = layerTars.map(sha256);
  const layerDigests = layers.map(sha256);
  const config = Buffer.from(JSON.stringify({
    created, architecture, os,
    config: spec.config ?? {},
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: spec.layers.map(() => ({ created, created_by: 'ferry test harness' })),
  }));
  const configDigest = sha256(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigests[i], size: l.length })),
  }));
  return {
    ref: normalizeRef(spec.ref), architecture, os,
    manifest, manifestDigest: sha256(manifest), config, configDigest, layers, layerDigests, layerTars, diffIds,
  };
}

/** An OCI image layout tarball holding `images` (one index entry per image). */
export function ociArchive(images: readonly BuiltImage[]): Buffer {
  const blobs = new Map<string, Buffer>();
  for (const img of images) {
    blobs.set(img.manifestDigest, img.manifest);
    blobs.set(img.configDigest, img.config);
    img.layers.forEach((l, i) => blobs.set(img.layerDigests[i]!, l));
  }
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: images.map((img) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: img.manifestDigest,
      size: img.manifest.length,
      annotations: {
        'io.containerd.image.name': img.ref,
        'org.opencontainers.image.ref.name': splitTag(img.ref).tag,
      },
      platform: { architecture: img.architecture, os: img.os },
    })),
  };
  return buildTar([
    { path: 'oci-layout', content: JSON.stringify({ imageLayoutVersion: '1.0.0' }) },
    { path: 'index.json', content: JSON.stringify(index) },
    { path: 'blobs/sha256/', type: 'dir' },
    ...[...blobs].map(([d, data]) => ({ path: `blobs/sha256/${hex(d)}`, content: data })),
  ]);
}

/**
 * A docker-archive tarball (`docker save` layout): `<config hex>.json`, one `<id>/layer.tar`
 * (uncompressed) + `json` + `VERSION` per layer, `manifest.json` and `repositories`.
 */
export function dockerArchive(images: readonly BuiltImage[]): Buffer {
  const entries: TarEntry[] = [];
  const manifest: unknown[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const written = new Set<string>();
  for (const img of images) {
    let parent = '';
    const layerPaths: string[] = [];
    img.layerTars.forEach((tar, i) => {
      // docker's legacy layer ids: a chain over the diff ids, so equal stacks share ids.
      const id = createHash('sha256').update(`${parent}\n${img.diffIds[i]}`).digest('hex');
      if (!written.has(id)) {
        written.add(id);
        entries.push(
          { path: `${id}/VERSION`, content: '1.0' },
          { path: `${id}/json`, content: JSON.stringify({ id, ...(parent ? { parent } : {}), created: '1970-01-01T00:00:00Z', os: img.os }) },
          { path: `${id}/layer.tar`, content: tar },
        );
      }
      layerPaths.push(`${id}/layer.tar`);
      parent = id;
    });
    const cfgName = `${hex(img.configDigest)}.json`;
    if (!written.has(cfgName)) {
      written.add(cfgName);
      entries.push({ path: cfgName, content: img.config });
    }
    const repoTag = dockerRepoTag(img.ref);
    manifest.push({ Config: cfgName, RepoTags: [repoTag], Layers: layerPaths });
    const { repo, tag } = splitTag(repoTag);
    (repositories[repo] ??= {})[tag] = parent;
  }
  entries.push(
    { path: 'manifest.json', content: JSON.stringify(manifest) },
    { path: 'repositories', content: JSON.stringify(repositories) },
  );
  return buildTar(entries);
}

/** Builds `specs` and writes them as one OCI archive at `path`; returns the built images. */
export function writeOciArchive(path: string, ...specs: ImageSpec[]): BuiltImage[] {
  const imgs = specs.map(buildImage);
  writeFileSync(path, ociArchive(imgs));
  return imgs;
}

/** Builds `specs` and writes them as one docker-archive at `path`; returns the built images. */
export function writeDockerArchive(path: string, ...specs: ImageSpec[]): BuiltImage[] {
  const imgs = specs.map(buildImage);
  writeFileSync(path, dockerArchive(imgs));
  return imgs;
}
