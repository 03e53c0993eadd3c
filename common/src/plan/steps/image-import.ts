/**
 * `image.import`: import container image tars (OCI layout or docker-archive) into containerd
 * with `ctr images import` — the seeds' `for tar in images/*.tar; do ctr -n k8s.io images
 * import $tar; done`, made idempotent and checked. The agent reads each tar's index first
 * (refs and digests), skips tars whose images are all present with the same digest, imports
 * the rest, re-tags per `rewrite`, and verifies every ref afterwards. A damaged tar fails the
 * step before ctr runs; if ctr fails half-way, refs it created are removed and refs it moved
 * are put back.
 *
 * ```yaml
 * - id: kubeedge-images          # seed 000: before keadm init
 *   type: image.import
 *   args:
 *     bundle: kubeedge
 *     images: [images/*.tar]
 *     k3s: true                  # k3s ctr, k3s's own containerd
 *     rewrite: [{ from: docker.io/kubeedge/, to: sea.hub:5000/kubeedge/ }]
 * ```
 */
import { schema } from '../step-schema.js';
import { readAbsPath } from './file-install.js';
import { readBundlePaths } from './systemd-unit.js';

/**
 * Tag imported refs under another name too (the original ref stays). `from` ending in "/" is
 * a registry/namespace prefix (`docker.io/kubeedge/`) and `to` replaces it; otherwise `from`
 * is one repository, optionally with a tag, and `to` a repository (its tag, if any, wins).
 * Short names are normalised as containerd does (`nginx` → `docker.io/library/nginx`).
 */
export interface ImageRewrite {
  from: string;
  to: string;
}

export interface ImageImportArgs {
  /** Bundle alias for `images`. */
  bundle?: string;
  /** Tar paths inside the bundle; globs (`images/*.tar`) allowed, each must match. */
  images?: string[];
  /** Absolute tar paths on the host; globs allowed, each must match. */
  files?: string[];
  /** containerd namespace; Kubernetes (CRI) uses k8s.io. */
  namespace: string;
  /** containerd socket. Default /run/containerd/containerd.sock (with k3s: k3s's own default). */
  address?: string;
  /** Use `k3s ctr` (k3s's embedded containerd). */
  k3s: boolean;
  rewrite: ImageRewrite[];
  /** After importing, check every ref is listed with the tar's digest. Default true. */
  verify: boolean;
}

const REF_CHARS = /^[A-Za-z0-9._\-/:@]+$/;

/** Schema for `image.import`. */
export const imageImportSchema = schema<ImageImportArgs>(
  'image.import',
  'Import image tars (OCI or docker-archive) with ctr into containerd, skipping images present by digest; rewrite refs; verify',
  (r) => {
    const bundle = r.string('bundle');
    const images = readBundlePaths(r, 'images');
    const files = r.stringList('files', { nonEmpty: true });
    files?.forEach((f, i) => { if (!f.startsWith('/')) r.problem(`files[${i}]`, `must be an absolute path on the host (got "${f}"); use bundle + images for bundle files`); });
    if (images && bundle === undefined) r.problem('bundle', '"images" are paths inside a bundle: give "bundle" (the plan\'s alias for it)');
    if (bundle !== undefined && !images) r.problem('images', '"bundle" needs "images": the tar paths inside it, like images/*.tar');
    if (!images && !files && bundle === undefined) r.problem('', 'give "bundle" + "images" (tars in a bundle) or "files" (tars on the host)');
    const namespace = r.string('namespace', { default: 'k8s.io' })!;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(namespace)) r.problem('namespace', `"namespace" must be a containerd namespace like k8s.io (got "${namespace}")`);
    const rewrite = r.objects<ImageRewrite>('rewrite', (w) => {
      const from = w.string('from', { required: true });
      const to = w.string('to', { required: true });
      if (from === undefined || to === undefined) return undefined;
      if (!REF_CHARS.test(from) || !REF_CHARS.test(to)) { w.problem('from', '"from" and "to" must be image names or prefixes'); return undefined; }
      if (from.endsWith('/') !== to.endsWith('/')) { w.problem('to', '"from" and "to" must both end with "/" (a prefix) or both name a repository'); return undefined; }
      if (from.includes('@') || to.includes('@')) { w.problem('from', 'rewrite rules name repositories, not digests'); return undefined; }
      return { from, to };
    }) ?? [];
    return {
      bundle, images, files, namespace,
      address: readAbsPath(r, 'address', false),
      k3s: r.bool('k3s', { default: false })!,
      rewrite,
      verify: r.bool('verify', { default: true })!,
    };
  },
);
