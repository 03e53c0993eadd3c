/**
 * Resolve an OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) into images.
 * Also handles what `docker save` writes since Docker 25, which is an OCI layout with a
 * docker-archive `manifest.json` alongside.
 */
import { ImageFormatError, ImageMetadataError } from './errors.js';
import { type ImageInfo, type TarIndex, parseDigest, readImageConfig } from './image-tar-index.js';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);

/**
 * Refs of a top-level index.json descriptor. `io.containerd.image.name` holds the full ref
 * (Docker 25+, containerd). `org.opencontainers.image.ref.name` holds a full ref for skopeo and
 * buildah but only the tag for Docker; a bare tag is useless for matching images, so it is
 * reported only when nothing better exists.
 */
function refsOf(d: Descriptor): string[] {
  const full = d.annotations?.['io.containerd.image.name'];
  const name = d.annotations?.['org.opencontainers.image.ref.name'];
  const refs: string[] = [];
  if (typeof full === 'string' && full !== '') refs.push(full);
  if (typeof name === 'string' && name !== '' && (refs.length === 0 || /[/:@]/.test(name)) && !refs.includes(name)) refs.push(name);
  return refs;
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string };
}

/** Options for {@link resolveOci}. */
export interface OciResolveOptions {
  /**
   * Skip platforms of a multi-platform index whose manifest blob is not in the tar (a partial
   * export of a multi-arch image). Default false: a missing manifest is an error.
   */
  skipMissingPlatforms?: boolean;
}

function descriptor(d: unknown, where: string): Descriptor {
  const o = d as Partial<Descriptor> | null;
  if (!o || typeof o !== 'object' || typeof o.digest !== 'string' || !Number.isSafeInteger(o.size) || o.size! < 0) {
    throw new ImageMetadataError(`${where}: malformed descriptor ${JSON.stringify(d)?.slice(0, 200)}`);
  }
  parseDigest(o.digest, where);
  return o as Descriptor;
}

function descriptors(doc: unknown, key: 'manifests' | 'layers', where: string): Descriptor[] {
  const list = (doc as Record<string, unknown> | null)?.[key];
  if (!Array.isArray(list)) throw new ImageMetadataError(`${where}: "${key}" is not an array`);
  return list.map((d, i) => descriptor(d, `${where} ${key}[${i}]`));
}

/** True for buildkit attestation manifests, which sit in an index next to the real platforms. */
function isAttestation(d: Descriptor): boolean {
  if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return d.platform?.os === 'unknown' && d.platform.architecture === 'unknown';
}

/** Images in an OCI layout, de-duplicated by manifest digest (refs merged). */
export function resolveOci(ix: TarIndex, options: OciResolveOptions = {}): ImageInfo[] {
  const layout = ix.files.get('oci-layout');
  const version = layout && (ix.json(layout, 'oci-layout') as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
  if (typeof version !== 'string') throw new ImageFormatError('oci-layout has no imageLayoutVersion');
  const indexFile = ix.files.get('index.json');
  if (!indexFile) throw new ImageFormatError('OCI layout without index.json');

  const images = new Map<string, ImageInfo>();
  const visit = (d: Descriptor, refs: string[], referencedBy: string, depth: number, optional: boolean): void => {
    if (depth > 4) throw new ImageMetadataError(`${referencedBy}: image indexes nested too deeply`);
    if (isAttestation(d)) return;
    if (optional && options.skipMissingPlatforms && !ix.file(blobPath(d.digest))) return;
    const f = ix.blob(d.digest, d.size, referencedBy);
    const doc = ix.json(f, `blob ${d.digest}`) as { mediaType?: unknown; schemaVersion?: unknown } | null;
    const mediaType = d.mediaType ?? (typeof doc?.mediaType === 'string' ? doc.mediaType : undefined);
    if (mediaType && INDEX_TYPES.has(mediaType)) {
      for (const child of descriptors(doc, 'manifests', `index ${d.digest}`)) visit(child, refs, `index ${d.digest}`, depth + 1, true);
      return;
    }
    if (mediaType !== undefined && !MANIFEST_TYPES.has(mediaType)) {
      throw new ImageMetadataError(`${referencedBy}: unsupported media type ${mediaType} for ${d.digest}`);
    }
    const seen = images.get(d.digest);
    if (seen) {
      for (const r of refs) if (!seen.refs.includes(r)) seen.refs.push(r);
      return;
    }
    images.set(d.digest, imageFromManifest(ix, d, doc, refs));
  };

  for (const d of descriptors(ix.json(indexFile, 'index.json'), 'manifests', 'index.json')) {
    visit(d, refsOf(d), 'index.json', 0, false);
  }
  return [...images.values()];
}

function blobPath(digest: string): string {
  const { alg, hex } = parseDigest(digest, 'descriptor');
  return `blobs/${alg}/${hex}`;
}

function imageFromManifest(ix: TarIndex, d: Descriptor, doc: unknown, refs: string[]): ImageInfo {
  const where = `manifest ${d.digest}`;
  if ((doc as { schemaVersion?: unknown } | null)?.schemaVersion !== 2) throw new ImageMetadataError(`${where}: schemaVersion is not 2`);
  const configDesc = descriptor((doc as { config?: unknown }).config, `${where} config`);
  const cfgFile = ix.blob(configDesc.digest, configDesc.size, where);
  const { platform, diffIds } = readImageConfig(ix.json(cfgFile, `config ${configDesc.digest}`), `config ${configDesc.digest}`);
  const layers = descriptors(doc, 'layers', where).map((l) => {
    ix.blob(l.digest, l.size, where);
    return { digest: l.digest, size: l.size, mediaType: l.mediaType ?? 'application/vnd.oci.image.layer.v1.tar' };
  });
  if (diffIds.length !== layers.length) {
    throw new ImageMetadataError(`${where}: ${layers.length} layers but config lists ${diffIds.length} diff_ids`);
  }
  return {
    refs: [...refs],
    platform,
    manifestDigest: d.digest,
    manifestDigestSynthetic: false,
    configDigest: configDesc.digest,
    layers,
    diffIds,
    totalSize: configDesc.size + layers.reduce((n, l) => n + l.size, 0),
  };
}
