/**
 * Executor for `image.import` (args: common/src/plan/steps/image-import.ts). Drives the host's
 * real `ctr` (or `k3s ctr`):
 *   1. resolve the tars (each pattern must match) and inspect every one — refs, digests,
 *      blob checksums — so a damaged tar fails the step before containerd is touched;
 *   2. list containerd's images and skip tars whose images are all present by digest;
 *   3. import the rest, tag per `rewrite`, and verify every ref points at the tar's image.
 * If an import, tag or verification fails, refs this run created are removed and refs it
 * moved are pointed back (they were saved under temporary names first), so `ctr images ls`
 * reads as before. Blobs an aborted import wrote are left to containerd's garbage collector.
 */
import { ErrorCode } from '../../../common/src/errors.js';
import type { ImageInfo } from '../../../common/src/bundle/image-tar.js';
import { inspectImageTarFile } from '../../../common/src/bundle/image-tar.js';
import type { ImageImportArgs } from '../../../common/src/plan/steps/image-import.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { Ctr } from './sys/ctr.js';
import { imagePresent, imageRefs, lookup, refPresent } from './sys/image-presence.js';
import { rewriteRef } from './sys/image-ref.js';
import { resolveBundleFiles, resolveHostFiles, type ResolvedFile } from './sys/paths.js';
import { guarded, StepError } from './step-error.js';

interface Tar { file: ResolvedFile; images: ImageInfo[]; present: boolean }
interface Tag { src: string; dst: string; image: ImageInfo }

/** The `image.import` step executor. */
export const imageImportExecutor: StepExecutor<ImageImportArgs> = {
  type: 'image.import',
  run: (args, ctx) => guarded(ctx.signal, () => importImages(args, ctx)),
};

const short = (d: string) => d.replace(/^sha256:/, '').slice(0, 12);

async function inspectAll(files: ResolvedFile[]): Promise<Array<Omit<Tar, 'present'>>> {
  const out: Array<Omit<Tar, 'present'>> = [];
  for (const file of files) {
    try {
      const info = await inspectImageTarFile(file.path);
      if (info.images.length === 0) throw new Error('it lists no images');
      out.push({ file, images: info.images });
    } catch (err) {
      throw new StepError(ErrorCode.StepImageTarInvalid, `${file.label} is not a usable image tar: ${(err as Error).message}; nothing was imported`,
        'the file is damaged or not an image archive: re-stage the bundle (its chunks are verified on fetch) or rebuild the tar with docker save / skopeo, then run the step again');
    }
  }
  return out;
}

async function importImages(args: ImageImportArgs, ctx: StepContext): Promise<StepOutcome> {
  const files = [
    ...(args.bundle !== undefined && args.images ? resolveBundleFiles(ctx, args.bundle, args.images, 'image tar') : []),
    ...(args.files ? resolveHostFiles(ctx.root, args.files, 'image tar') : []),
  ];
  const inspected = await inspectAll(files);
  const ctr = new Ctr(ctx, { namespace: args.namespace, address: args.address, k3s: args.k3s, root: ctx.root });
  ctr.requireSocket();
  const before = await ctr.list();

  const tars: Tar[] = [];
  for (const t of inspected) {
    let present = true;
    for (const img of t.images) if (!(await imagePresent(ctr, before, img))) { present = false; break; }
    tars.push({ ...t, present });
  }
  const tags: Tag[] = [];
  for (const t of inspected) {
    for (const image of t.images) {
      for (const src of imageRefs(image)) {
        const dst = rewriteRef(src, args.rewrite);
        if (dst && dst !== src && !tags.some((x) => x.dst === dst)) tags.push({ src, dst, image });
      }
    }
  }
  const missingTags: Tag[] = [];
  for (const t of tags) if (!(await refPresent(ctr, before, t.dst, t.image))) missingTags.push(t);
  const toImport = tars.filter((t) => !t.present);

  const diff = [
    ...toImport.flatMap((t) => [`+ import ${t.file.label}`, ...t.images.map((i) => `    ${imageRefs(i).join(', ') || '(unnamed)'} ${short(i.manifestDigest)} ${i.platform.os}/${i.platform.architecture}`)]),
    ...missingTags.map((t) => `+ tag ${t.src} -> ${t.dst}`),
  ].join('\n');
  const nImages = tars.reduce((n, t) => n + t.images.length, 0);
  if (!diff) return { status: 'unchanged', message: `all ${nImages} image(s) from ${tars.length} tar(s) already present in ${ctr.where}` };
  if (ctx.check) {
    return { status: 'changed', diff, message: `would import ${toImport.length} of ${tars.length} tar(s) and add ${missingTags.length} tag(s) in ${ctr.where}` };
  }

  // Refs this run may repoint: saved under temporary names so a failure can put them back.
  const wanted = [...toImport.flatMap((t) => t.images.flatMap((i) => imageRefs(i).map((r) => lookup(before, r, i.refs)?.name ?? r))), ...missingTags.map((t) => t.dst)];
  const backups = new Map<string, string>();
  const stamp = Date.now().toString(36);
  for (const ref of new Set(wanted)) {
    if (!before.has(ref)) continue;
    const b = `ferry.invalid/rollback/img${backups.size}:${stamp}`;
    await ctr.tag(ref, b);
    backups.set(ref, b);
  }
  let verified = 0;
  try {
    for (const t of toImport) {
      ctx.output(`[ferry] importing ${t.file.label}`);
      await ctr.importTar(t.file.path, t.file.label);
    }
    let now = await ctr.list();
    for (const t of missingTags) {
      const src = lookup(now, t.src, t.image.refs);
      if (!src) throw new StepError(ErrorCode.StepImageVerifyFailed, `cannot tag ${t.dst}: ${t.src} is not in ${ctr.where} after the import`, 'check the tar\'s image names (ferry bundle show)');
      await ctr.tag(src.name, t.dst);
    }
    if (args.verify) {
      now = await ctr.list();
      const bad: string[] = [];
      for (const t of tars) {
        for (const img of t.images) {
          if (!(await imagePresent(ctr, now, img))) bad.push(`${imageRefs(img).join(', ') || short(img.manifestDigest)} from ${t.file.label}`);
          else verified += Math.max(1, imageRefs(img).length);
        }
      }
      for (const t of tags) {
        if (!(await refPresent(ctr, now, t.dst, t.image))) bad.push(`${t.dst} (rewrite of ${t.src})`);
        else verified++;
      }
      if (bad.length) {
        throw new StepError(ErrorCode.StepImageVerifyFailed, `after importing, ${bad.length} image ref(s) are missing or point at other content in ${ctr.where}: ${bad.join('; ')}`,
          'the tar\'s names may differ from what ctr stores (an OCI tar without io.containerd.image.name), or something removed them concurrently');
      }
    }
  } catch (err) {
    // Only names this run could have made are removed: kubelet may pull other images meanwhile.
    // In k8s.io, containerd's CRI plugin adds a "sha256:<config digest>" image-ID ref per image.
    const ours = new Set([...toImport.flatMap((t) => t.images.flatMap((i) => [...i.refs, ...imageRefs(i), i.configDigest])), ...missingTags.map((t) => t.dst)]);
    const undo = await rollBack(ctx, args, before, backups, ours);
    if (err instanceof StepError) throw new StepError(err.code, `${err.message}; ${undo}`, err.hint, err.details);
    throw err;
  }
  await ctr.remove([...backups.values()]).catch((e) => ctx.output(`[ferry] could not remove temporary refs: ${(e as Error).message}`, 'stderr'));
  const skipped = tars.length - toImport.length;
  return {
    status: 'changed', diff,
    message: `imported ${toImport.length} tar(s)${skipped ? ` (${skipped} already present)` : ''}${missingTags.length ? `, tagged ${missingTags.length} ref(s)` : ''}${args.verify ? `, verified ${verified} ref(s)` : ''} in ${ctr.where}`,
  };
}

/** Removes refs this run created and points moved refs back at their saved targets. */
async function rollBack(ctx: StepContext, args: ImageImportArgs, before: ReadonlyMap<string, string>, backups: Map<string, string>, ours: ReadonlySet<string>): Promise<string> {
  const own = { signal: AbortSignal.timeout(60_000), output: ctx.output };
  const ctr = new Ctr(own, { namespace: args.namespace, address: args.address, k3s: args.k3s, root: ctx.root });
  try {
    const now = await ctr.list();
    const created = [...now.keys()].filter((r) => !before.has(r) && ours.has(r));
    await ctr.remove(created);
    for (const [ref, b] of backups) if (now.get(ref) !== before.get(ref)) await ctr.tag(b, ref);
    await ctr.remove([...backups.values()]);
    // The CRI plugin adds its ID refs from events, a moment after ctr made the image: look again.
    await new Promise((r) => setTimeout(r, 500));
    const late = [...(await ctr.list()).keys()].filter((r) => !before.has(r) && ours.has(r));
    await ctr.remove(late);
    const removed = created.length + late.length;
    return removed || backups.size ? `rolled back: removed ${removed} new ref(s), restored ${backups.size} saved ref(s)` : 'containerd\'s image list was not changed';
  } catch (err) {
    return `ROLLBACK INCOMPLETE (${(err as Error).message}); compare \`ctr -n ${args.namespace} images ls\` with what you expect`;
  }
}
