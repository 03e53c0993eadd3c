/**
 * Inspect a container image tar (OCI image layout or docker-archive, optionally gzipped)
 * without extracting it: one streaming pass hashes every file and keeps only small JSON, then
 * the layout is resolved into images (refs, platform, manifest/config/layer digests, size).
 *
 * Everything is verified on the way: tar structure, entry names, link targets, every
 * `blobs/<alg>/<hex>` against its content, and every blob the metadata references.
 */
import { createReadStream } from 'node:fs';
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ImageFormatError, TarMalformedError, TarTruncatedError } from './errors.js';
import { resolveDockerArchive, readDockerManifest, referencedFile } from './image-docker.js';
import { resolveOci } from './image-oci.js';
import { type ImageInfo, TarIndex } from './image-tar-index.js';
import { readTar } from './tar-reader.js';

export type { ImageInfo, ImageLayer, ImagePlatform } from './image-tar-index.js';

/** Layout of the inspected tar. */
export type ImageTarFormat = 'oci' | 'docker-archive';

/** Result of {@link inspectImageTar}. */
export interface ImageTarInfo {
  /** `'oci'` also covers Docker 25+ `docker save` output (OCI layout plus manifest.json). */
  format: ImageTarFormat;
  images: ImageInfo[];
}

/** Options for {@link inspectImageTar}. */
export interface InspectImageTarOptions {
  /** Skip platforms of a multi-platform index whose manifest is absent instead of failing. */
  skipMissingPlatforms?: boolean;
  /** Largest JSON file (manifest, config, index) kept in memory. Default 4 MiB. */
  maxMetadataBytes?: number;
}

/** Inspect an image tar from any byte source (e.g. a fs.ReadStream). Gzip is detected and handled. */
export async function inspectImageTar(source: AsyncIterable<Uint8Array>, options: InspectImageTarOptions = {}): Promise<ImageTarInfo> {
  const ix = new TarIndex(options.maxMetadataBytes ?? 4 * 1024 * 1024);
  await readTar(maybeGunzip(source), (e) => ix.onEntry(e));
  ix.checkLinkedBlobs();

  if (ix.files.has('index.json') && ix.files.has('oci-layout')) {
    const images = resolveOci(ix, { skipMissingPlatforms: options.skipMissingPlatforms });
    if (ix.files.has('manifest.json')) mergeRepoTags(ix, images);
    return { format: 'oci', images };
  }
  if (ix.files.has('manifest.json')) return { format: 'docker-archive', images: resolveDockerArchive(ix) };
  throw new ImageFormatError('tar has neither oci-layout + index.json nor manifest.json: not a container image archive');
}

/** {@link inspectImageTar} on a file. */
export async function inspectImageTarFile(path: string, options?: InspectImageTarOptions): Promise<ImageTarInfo> {
  return inspectImageTar(createReadStream(path, { highWaterMark: 1 << 20 }), options);
}

/**
 * Docker 25+ writes tags both as index.json annotations and as RepoTags in manifest.json;
 * older annotation-less variants only have the latter. Add RepoTags to the image whose config
 * they point at.
 */
function mergeRepoTags(ix: TarIndex, images: ImageInfo[]): void {
  readDockerManifest(ix).forEach((m, i) => {
    const cfg = referencedFile(ix, m.Config, `manifest.json[${i}]`);
    for (const img of images) {
      if (img.configDigest !== `sha256:${cfg.file.sha256}`) continue;
      for (const t of m.RepoTags) if (!img.refs.includes(t)) img.refs.push(t);
    }
  });
}

/** Pass bytes through, gunzipping if the stream starts with the gzip magic. */
async function* maybeGunzip(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let have = 0;
  while (have < 2) {
    const n = await it.next();
    if (n.done) break;
    head.push(n.value);
    have += n.value.length;
  }
  const rest = (async function* () {
    try {
      yield* head;
      for (let n = await it.next(); !n.done; n = await it.next()) yield n.value;
    } finally {
      // We pulled from the iterator by hand, so an early exit (a rejected tar) must close the
      // source ourselves, or a file stream's descriptor stays open.
      await it.return?.();
    }
  })();
  const first = Buffer.concat(head.map((h) => Buffer.from(h.buffer, h.byteOffset, h.byteLength)), Math.min(have, 2));
  if (!(first[0] === 0x1f && first[1] === 0x8b)) return yield* rest;

  const gunzip = createGunzip();
  // pipeline, not pipe(): a failing source must fail the gunzip stream instead of stalling it.
  pipeline(Readable.from(rest), gunzip, () => undefined);
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) yield chunk;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'Z_BUF_ERROR') throw new TarTruncatedError('gzip stream ends early (truncated .tar.gz)');
    if (typeof code === 'string' && code.startsWith('Z_')) throw new TarMalformedError(`gzip stream is corrupt: ${(e as Error).message}`);
    throw e;
  }
}
