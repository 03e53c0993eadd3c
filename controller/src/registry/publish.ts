/**
 * Plans a publication: which repository and tag each image of a bundle is
 * served under, and everything below each tag. Names come from the bundle's
 * rewrite rules, or from `--as` (docs/registry.md, "What is served").
 * Nothing is written here; RegistryStore.publish writes the plan in one
 * transaction.
 */
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { ChunkStore } from '../../../common/src/bundle/chunk-store.js';
import {
  canonicalImageRef, compileRewrite, formatImageRef, parseImageRef, rewriteImageRef, type CompiledRewrite, type ImageRef,
} from '../../../common/src/bundle/lint/image-ref.js';
import type { StoredBundle } from '../bundles/bundle-store.js';
import { readTarImages, type TarImage } from './image-graph.js';
import type { PublicationPlan, RepositoryContent } from './registry-store.js';

/** One `--as`: SRC=DEST, or DEST alone for a bundle with one image reference. */
interface AsName { src?: string; dest: ImageRef; raw: string }

function parseAs(raw: string): AsName {
  const eq = raw.indexOf('=');
  const src = eq >= 0 ? raw.slice(0, eq) : undefined;
  const destText = eq >= 0 ? raw.slice(eq + 1) : raw;
  const dest = parseImageRef(destText);
  if (!dest || dest.digest) {
    throw new FerryError(ErrorCode.InvalidArgument, `--as ${raw}: ${JSON.stringify(destText)} is not an image name with an optional tag`,
      'e.g. --as sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8, or --as SOURCE=DEST to pick one image of the bundle');
  }
  return { src, dest, raw };
}

/** The bundle's image references, normalised; sources that are not valid references are skipped (reported). */
interface Source { written: string; ref: ImageRef; image: TarImage }

/** Reads every image tar of `b` and plans the publication. */
export async function planPublication(chunks: ChunkStore, b: StoredBundle, opts: { as: string[]; anonymous: boolean }): Promise<{ plan: PublicationPlan; skipped: string[] }> {
  const m = b.manifest;
  const sources: Source[] = [];
  const skipped: string[] = [];
  for (const path of [...new Set(m.images.map((i) => i.file))]) {
    const file = m.files.find((f) => f.path === path);
    if (!file) throw new FerryError(ErrorCode.BundleInvalid, `${m.name}:${m.version} lists images in ${path}, which is not one of its files`);
    for (const image of await readTarImages(chunks, file)) {
      for (const written of image.refs) {
        const ref = parseImageRef(written);
        if (ref) sources.push({ written, ref: canonicalImageRef(ref), image });
        else skipped.push(`${written} (in ${path}): not an image reference`);
      }
    }
  }
  const rules = m.rewrites.map((r) => compileRewrite(r)).filter((r): r is CompiledRewrite => typeof r !== 'string');
  const targets: Array<{ dest: ImageRef; image: TarImage }> = [];
  if (opts.as.length === 0) {
    for (const s of sources) targets.push({ dest: rewriteImageRef(s.ref, rules), image: s.image });
  } else {
    const known = [...new Set(sources.map((s) => formatImageRef(s.ref)))];
    for (const a of opts.as.map(parseAs)) {
      let picked: Source[];
      if (a.src === undefined) {
        if (known.length !== 1) {
          throw new FerryError(ErrorCode.InvalidArgument, `--as ${a.raw}: the bundle holds ${known.length} image references (${known.join(', ') || 'none'}), so say which: --as SOURCE=${a.raw}`);
        }
        picked = sources;
      } else {
        const want = parseImageRef(a.src);
        const norm = want && formatImageRef(canonicalImageRef(want));
        picked = sources.filter((s) => s.written === a.src || formatImageRef(s.ref) === norm);
        if (picked.length === 0) {
          throw new FerryError(ErrorCode.NotFound, `--as ${a.raw}: the bundle has no image ${a.src}`, `its images: ${known.join(', ') || 'none'}`);
        }
      }
      for (const s of picked) targets.push({ dest: a.dest.tag !== undefined ? a.dest : { ...a.dest, tag: s.ref.tag }, image: s.image });
    }
  }

  const repositories = new Map<string, RepositoryContent>();
  for (const { dest, image } of targets) {
    const repository = `${dest.domain}/${dest.path}`;
    let c = repositories.get(repository);
    if (!c) repositories.set(repository, (c = { tags: new Map(), manifests: new Map(), blobs: new Map() }));
    if (dest.tag !== undefined) {
      const had = c.tags.get(dest.tag);
      if (had !== undefined && had !== image.digest) {
        throw new FerryError(ErrorCode.InvalidArgument, `${repository}:${dest.tag} would name two images of ${m.name}:${m.version} (${had} and ${image.digest})`,
          'give one of them another name with --as SOURCE=DEST');
      }
      c.tags.set(dest.tag, image.digest);
    }
    for (const [d, v] of image.graph.manifests) c.manifests.set(d, v);
    for (const [d, v] of image.graph.blobs) c.blobs.set(d, v);
  }
  return { plan: { bundleId: b.id, bundleName: m.name, bundleVersion: m.version, anonymous: opts.anonymous, repositories }, skipped };
}
