/**
 * Resolve a docker-archive (`docker save` before Docker 25, `skopeo copy docker-archive:`):
 * `manifest.json` = [{ Config, RepoTags, Layers }], optional legacy `repositories`.
 *
 * A docker-archive has no registry manifest, so there is no real manifest digest. We compute
 * one (`manifestDigestSynthetic: true`): the sha256 of the OCI image manifest that describes
 * exactly these blobs, serialised canonically — keys sorted at every level, no whitespace:
 *
 *   {"config":{"digest":<config>,"mediaType":"application/vnd.oci.image.config.v1+json","size":N},
 *    "layers":[{"digest":<layer file sha256>,"mediaType":<sniffed: tar, tar+gzip, tar+zstd>,"size":N},…],
 *    "mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}
 *
 * It depends only on content (not on file names or tags), so the same image saved twice gets
 * the same digest. It will generally not equal the digest a registry shows for the image, whose
 * layers are compressed differently — never compare it with one.
 */
import { createHash } from 'node:crypto';
import { ImageBlobDigestMismatchError, ImageBlobMissingError, ImageMetadataError, TarPathEscapeError } from './errors.js';
import { type ImageInfo, type IndexedFile, type TarIndex, layerMediaType, readImageConfig } from './image-tar-index.js';
import { normalizeEntryName } from './tar-paths.js';

interface DockerManifestEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/** Parse manifest.json strictly enough that later lookups cannot be fooled. */
export function readDockerManifest(ix: TarIndex): DockerManifestEntry[] {
  const f = ix.files.get('manifest.json');
  if (!f) throw new ImageMetadataError('manifest.json is missing');
  const doc = ix.json(f, 'manifest.json');
  if (!Array.isArray(doc)) throw new ImageMetadataError('manifest.json is not an array');
  return doc.map((e: Partial<Record<keyof DockerManifestEntry, unknown>> | null, i) => {
    const where = `manifest.json[${i}]`;
    if (!e || typeof e.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
      throw new ImageMetadataError(`${where} needs Config (string) and Layers (string[])`);
    }
    const tags = e.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new ImageMetadataError(`${where}.RepoTags is not a string list`);
    return { Config: e.Config, RepoTags: tags as string[], Layers: e.Layers as string[] };
  });
}

/** A file referenced from manifest.json, following links; typed errors for unsafe or missing paths. */
export function referencedFile(ix: TarIndex, path: string, referencedBy: string): { name: string; file: IndexedFile } {
  let name: string;
  try {
    name = normalizeEntryName(path);
  } catch (e) {
    if (e instanceof TarPathEscapeError) throw new ImageMetadataError(`${referencedBy} references unsafe path ${JSON.stringify(path)}`);
    throw e;
  }
  const file = ix.file(name);
  if (!file) throw new ImageBlobMissingError(path, referencedBy);
  return { name, file };
}

/** `repositories` maps repo -> tag -> top layer id; used only when RepoTags is absent. */
function legacyRefs(ix: TarIndex): Map<string, string[]> {
  const byLayerId = new Map<string, string[]>();
  const f = ix.files.get('repositories');
  if (!f) return byLayerId;
  const doc = ix.json(f, 'repositories') as Record<string, Record<string, unknown>> | null;
  for (const [repo, tags] of Object.entries(doc && typeof doc === 'object' ? doc : {})) {
    for (const [tag, id] of Object.entries(tags && typeof tags === 'object' ? tags : {})) {
      if (typeof id === 'string') byLayerId.set(id, [...(byLayerId.get(id) ?? []), `${repo}:${tag}`]);
    }
  }
  return byLayerId;
}

/** Images in a docker-archive, in manifest.json order. */
export function resolveDockerArchive(ix: TarIndex): ImageInfo[] {
  const legacy = legacyRefs(ix);
  return readDockerManifest(ix).map((m, i) => {
    const where = `manifest.json[${i}]`;
    const cfg = referencedFile(ix, m.Config, where);
    // Old-style archives name the config after its digest; hold it to that.
    const named = /(?:^|\/)([0-9a-f]{64})(?:\.json)?$/.exec(cfg.name);
    if (named && named[1] !== cfg.file.sha256) throw new ImageBlobDigestMismatchError(cfg.name, `content hashes to sha256:${cfg.file.sha256}`);
    const configDigest = `sha256:${cfg.file.sha256}`;
    const { platform, diffIds } = readImageConfig(ix.json(cfg.file, `config ${m.Config}`), `config ${m.Config}`);

    const layers = m.Layers.map((p) => {
      const { file } = referencedFile(ix, p, where);
      return { digest: `sha256:${file.sha256}`, size: file.size, mediaType: layerMediaType(file.head) };
    });
    if (diffIds.length !== layers.length) {
      throw new ImageMetadataError(`${where}: ${layers.length} layers but config lists ${diffIds.length} diff_ids`);
    }
    const topLayerId = m.Layers.at(-1)?.split('/')[0] ?? '';
    const refs = m.RepoTags.length > 0 ? m.RepoTags : (legacy.get(topLayerId) ?? []);
    return {
      refs: [...new Set(refs)],
      platform,
      manifestDigest: syntheticManifestDigest(configDigest, cfg.file.size, layers),
      manifestDigestSynthetic: true,
      configDigest,
      layers,
      diffIds,
      totalSize: cfg.file.size + layers.reduce((n, l) => n + l.size, 0),
    };
  });
}

/** See the module comment for the exact canonical form. */
export function syntheticManifestDigest(configDigest: string, configSize: number, layers: ImageInfo['layers']): string {
  return `sha256:${createHash('sha256').update(syntheticManifest(configDigest, configSize, layers)).digest('hex')}`;
}

/** The bytes of the derived manifest (the registry serves exactly these). Keys below are already in sorted order. */
export function syntheticManifest(configDigest: string, configSize: number, layers: ImageInfo['layers']): Buffer {
  const manifest = {
    config: { digest: configDigest, mediaType: 'application/vnd.oci.image.config.v1+json', size: configSize },
    layers: layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    schemaVersion: 2,
  };
  return Buffer.from(JSON.stringify(manifest));
}
