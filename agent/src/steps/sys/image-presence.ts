/**
 * "Is this image from the tar already in containerd?" — answered by digest, never by name
 * alone: a ref that points at other content (an older build under the same tag) is not
 * present. What ctr lists as an image's target depends on the tar:
 *   - OCI tar, single manifest: the manifest digest, equal to the tar's;
 *   - OCI tar whose ref names an index: the index, which lists the tar's manifest;
 *   - docker-archive: a manifest ctr wrote itself, so its digest is ctr's, not the tar's
 *     (ours is synthetic); its config digest, though, is the tar's config digest.
 */
import type { ImageInfo } from '../../../../common/src/bundle/image-tar.js';
import type { Ctr } from './ctr.js';
import { isQualifiedRef, normalizeRef } from './image-ref.js';

interface Descriptor { digest?: unknown }
interface ManifestOrIndex { manifests?: Descriptor[]; config?: Descriptor }

/** True when the content containerd has under `digest` is this image (see module comment). */
export async function targetMatches(ctr: Ctr, digest: string | undefined, image: ImageInfo): Promise<boolean> {
  if (!digest) return false;
  if (!image.manifestDigestSynthetic && digest === image.manifestDigest) return true;
  const blob = (await ctr.blobJson(digest)) as ManifestOrIndex | undefined;
  if (!blob || typeof blob !== 'object') return false;
  if (blob.config?.digest === image.configDigest) return true;
  if (!Array.isArray(blob.manifests)) return false;
  if (blob.manifests.some((m) => m.digest === image.manifestDigest)) return true;
  // An index ctr made around a docker-archive image: look one level down for the config.
  for (const m of blob.manifests.slice(0, 16)) {
    const child = typeof m.digest === 'string' ? ((await ctr.blobJson(m.digest)) as ManifestOrIndex | undefined) : undefined;
    if (child?.config?.digest === image.configDigest) return true;
  }
  return false;
}

/** The refs a tar gives an image, normalised and deduplicated; bare OCI tags ("1.0") are left out. */
export function imageRefs(image: ImageInfo): string[] {
  return [...new Set(image.refs.filter(isQualifiedRef).map(normalizeRef))];
}

/**
 * Where `ref` is listed: ctr stores docker-archive names normalised but OCI annotation
 * names as written, so both spellings are looked up. Returns the listed name and digest.
 */
export function lookup(listing: ReadonlyMap<string, string>, ref: string, raw: readonly string[] = []): { name: string; digest: string } | undefined {
  for (const name of [ref, ...raw.filter((r) => normalizeRef(r) === ref)]) {
    const digest = listing.get(name);
    if (digest) return { name, digest };
  }
  return undefined;
}

/** True when `ref` is listed and points at this image. */
export async function refPresent(ctr: Ctr, listing: ReadonlyMap<string, string>, ref: string, image: ImageInfo): Promise<boolean> {
  return targetMatches(ctr, lookup(listing, ref, image.refs)?.digest, image);
}

/**
 * True when the image is in containerd: every qualified ref points at it, or — for images the
 * tar does not name — some listed image has its manifest digest.
 */
export async function imagePresent(ctr: Ctr, listing: ReadonlyMap<string, string>, image: ImageInfo): Promise<boolean> {
  const refs = imageRefs(image);
  if (refs.length === 0) {
    return !image.manifestDigestSynthetic && [...listing.values()].includes(image.manifestDigest);
  }
  for (const ref of refs) if (!(await refPresent(ctr, listing, ref, image))) return false;
  return true;
}
