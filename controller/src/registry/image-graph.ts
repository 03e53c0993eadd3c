/**
 * One image tar of a bundle, read once from the chunk store, turned into
 * what the registry serves: for every top-level image (with the references
 * it is known by) the manifests below it with their exact bytes, and the
 * blobs below it as byte ranges of the tar. Everything reachable from a
 * top-level image must be in the tar, or the tar cannot be published.
 */
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { ChunkStore } from '../../../common/src/bundle/chunk-store.js';
import type { BundleFile } from '../../../common/src/bundle/manifest.js';
import { readDockerManifest, referencedFile, resolveDockerArchive, syntheticManifest } from '../../../common/src/bundle/image-docker.js';
import { type IndexedFile, parseDigest, TarIndex } from '../../../common/src/bundle/image-tar-index.js';
import { readTar } from '../../../common/src/bundle/tar-reader.js';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);
const MAX_METADATA = 4 * 1024 * 1024;

/** Content of one top-level image: manifests (bytes) and blobs (ranges of the tar). */
export interface ImageGraph {
  manifests: Map<string, { mediaType: string; body: Buffer }>;
  blobs: Map<string, { file: string; offset: number; size: number }>;
}

/** A top-level image of the tar: what a tag points at. */
export interface TarImage {
  /** References as written in the tar (annotations, RepoTags). */
  refs: string[];
  digest: string;
  graph: ImageGraph;
}

interface Descriptor { mediaType?: string; digest: string; size: number; annotations?: Record<string, string>; platform?: { os?: string; architecture?: string } }

/** Reads `file` (an image tar in the bundle) from `chunks` and lists its images. */
export async function readTarImages(chunks: ChunkStore, file: BundleFile): Promise<TarImage[]> {
  const ix = new TarIndex(MAX_METADATA);
  let first = true;
  const source = async function* () {
    for (const c of file.chunks) {
      const bytes = await chunks.get(c.digest);
      if (first && bytes[0] === 0x1f && bytes[1] === 0x8b) {
        throw new FerryError(ErrorCode.InvalidArgument, `${file.path} is a gzip-compressed tar: its blobs have no byte range in the bundle`,
          'store image tars uncompressed in the bundle (images/*.tar, as `docker save` or `skopeo copy … oci-archive:` write them) and push it again');
      }
      first = false;
      yield bytes;
    }
  };
  await readTar(source(), (e) => ix.onEntry(e));
  ix.checkLinkedBlobs();
  const bySha = new Map<string, IndexedFile>();
  for (const f of ix.files.values()) bySha.set(`sha256:${f.sha256}`, f);
  const blobAt = (digest: string, size: number | undefined, where: string) => {
    const f = bySha.get(digest);
    if (!f) throw new FerryError(ErrorCode.ImageBlobMissing, `${file.path}: blob ${digest} (${where}) is not in the tar`, 'export the image again, completely');
    if (size !== undefined && f.size !== size) throw new FerryError(ErrorCode.ImageBlobDigestMismatch, `${file.path}: blob ${digest} is ${f.size} bytes, ${where} says ${size}`);
    return { file: file.path, offset: f.offset, size: f.size };
  };

  if (ix.files.has('index.json') && ix.files.has('oci-layout')) return ociImages(ix, file.path, blobAt);
  if (ix.files.has('manifest.json')) {
    const entries = readDockerManifest(ix);
    return resolveDockerArchive(ix).map((img, i) => {
      const cfg = referencedFile(ix, entries[i]!.Config, `manifest.json[${i}]`);
      const body = syntheticManifest(img.configDigest, cfg.file.size, img.layers);
      const graph: ImageGraph = { manifests: new Map([[img.manifestDigest, { mediaType: 'application/vnd.oci.image.manifest.v1+json', body }]]), blobs: new Map() };
      graph.blobs.set(img.configDigest, blobAt(img.configDigest, cfg.file.size, 'config'));
      for (const l of img.layers) graph.blobs.set(l.digest, blobAt(l.digest, l.size, 'layer'));
      return { refs: img.refs, digest: img.manifestDigest, graph };
    });
  }
  throw new FerryError(ErrorCode.ImageFormatUnknown, `${file.path} has neither oci-layout + index.json nor manifest.json: not an image tar`);
}

type BlobAt = (digest: string, size: number | undefined, where: string) => { file: string; offset: number; size: number };

function ociImages(ix: TarIndex, path: string, blobAt: BlobAt): TarImage[] {
  const index = ix.json(ix.files.get('index.json')!, 'index.json') as { manifests?: unknown };
  if (!Array.isArray(index?.manifests)) throw new FerryError(ErrorCode.ImageMetadataInvalid, `${path}: index.json has no manifests list`);
  // Docker 25+ writes RepoTags in manifest.json beside the OCI layout; they name the image whose config they point at.
  const repoTags = new Map<string, string[]>();
  if (ix.files.has('manifest.json')) {
    readDockerManifest(ix).forEach((m, i) => {
      const cfg = referencedFile(ix, m.Config, `manifest.json[${i}]`);
      repoTags.set(`sha256:${cfg.file.sha256}`, m.RepoTags);
    });
  }
  const out: TarImage[] = [];
  for (const d of index.manifests as Descriptor[]) {
    const graph: ImageGraph = { manifests: new Map(), blobs: new Map() };
    const configs: string[] = [];
    visit(ix, path, d, graph, blobAt, 0, configs, false);
    const refs = refsOf(d);
    if (configs.length === 1) for (const t of repoTags.get(configs[0]!) ?? []) if (!refs.includes(t)) refs.push(t);
    out.push({ refs, digest: d.digest, graph });
  }
  return out;
}

/** Full references from a top-level descriptor's annotations (a bare tag names nothing). */
function refsOf(d: Descriptor): string[] {
  const refs: string[] = [];
  const full = d.annotations?.['io.containerd.image.name'];
  const name = d.annotations?.['org.opencontainers.image.ref.name'];
  if (typeof full === 'string' && full !== '') refs.push(full);
  if (typeof name === 'string' && /[/:]/.test(name) && !refs.includes(name)) refs.push(name);
  return refs;
}

function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown');
}

function visit(ix: TarIndex, path: string, d: Descriptor, graph: ImageGraph, blobAt: BlobAt, depth: number, configs: string[], child: boolean): void {
  const where = `${path}: ${d?.digest ?? 'descriptor'}`;
  if (!d || typeof d.digest !== 'string' || !Number.isSafeInteger(d.size)) throw new FerryError(ErrorCode.ImageMetadataInvalid, `${where}: malformed descriptor`);
  if (depth > 4) throw new FerryError(ErrorCode.ImageMetadataInvalid, `${where}: indexes nested too deeply`);
  const { alg, hex } = parseDigest(d.digest, where);
  const f = ix.file(`blobs/${alg}/${hex}`);
  // An attestation an exporter left out is no image: clients never ask for it by platform.
  if (!f && child && isAttestation(d)) return;
  if (!f) {
    throw new FerryError(ErrorCode.ImageBlobMissing, `${where}: manifest is not in the tar`,
      'export every platform the index lists (e.g. `skopeo copy --all`), or publish a single-platform export');
  }
  if (alg !== 'sha256') throw new FerryError(ErrorCode.ImageMetadataInvalid, `${where}: Ferry serves sha256 digests only`);
  if (f.size !== d.size) throw new FerryError(ErrorCode.ImageBlobDigestMismatch, `${where}: ${f.size} bytes, the descriptor says ${d.size}`);
  if (!f.json) throw new FerryError(ErrorCode.ImageMetadataInvalid, `${where}: manifest is not JSON or larger than 4 MiB`);
  const doc = ix.json(f, where) as { mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
  const mediaType = d.mediaType ?? doc.mediaType;
  if (mediaType && INDEX_TYPES.has(mediaType)) {
    graph.manifests.set(d.digest, { mediaType, body: f.json });
    if (!Array.isArray(doc.manifests)) throw new FerryError(ErrorCode.ImageMetadataInvalid, `${where}: index without manifests`);
    for (const c of doc.manifests) visit(ix, path, c, graph, blobAt, depth + 1, configs, true);
    return;
  }
  if (!mediaType || !MANIFEST_TYPES.has(mediaType)) {
    throw new FerryError(ErrorCode.ImageMetadataInvalid, `${where}: media type ${mediaType ?? '(none)'} is not an image manifest or index`);
  }
  graph.manifests.set(d.digest, { mediaType, body: f.json });
  if (!doc.config || !Array.isArray(doc.layers)) throw new FerryError(ErrorCode.ImageMetadataInvalid, `${where}: manifest without config or layers`);
  graph.blobs.set(doc.config.digest, blobAt(doc.config.digest, doc.config.size, `config of ${d.digest}`));
  configs.push(doc.config.digest);
  for (const l of doc.layers) graph.blobs.set(l.digest, blobAt(l.digest, l.size, `layer of ${d.digest}`));
}
