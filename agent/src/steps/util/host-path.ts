/**
 * Host paths in plans are absolute paths on the host; the agent resolves
 * them under ctx.root ("/" in production, a temp dir in tests).
 */
import { dirname, posix, join, relative, isAbsolute } from 'node:path';
import { lstat, realpath } from 'node:fs/promises';
import { ErrorCode } from '../../../../common/src/errors.js';
import type { StepContext } from '../step.js';
import { StepError } from '../step-error.js';

/** Where absolute host path `p` is for this agent. Normalising first keeps `..` from leaving the root. */
export function hostPath(ctx: Pick<StepContext, 'root'>, p: string): string {
  return join(ctx.root, posix.normalize(posix.join('/', p)));
}

/** True when `child` is `parent` or inside it. */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * The real file behind `path` (following symlinks such as
 * /etc/kubeedge/config/edgecore.yaml -> /data/...), so edits replace the
 * target rather than turning the link into a regular file. The target must
 * stay under the root.
 */
export async function realTarget(ctx: Pick<StepContext, 'root'>, path: string, shown: string): Promise<string> {
  const real = await realpath(path);
  const root = await realpath(ctx.root);
  if (!isInside(root, real)) {
    throw new StepError(ErrorCode.InvalidArgument, `${shown} is a symlink to ${real}, outside the host root ${ctx.root}`, 'point the step at the real file');
  }
  return real;
}

/**
 * Refuses host path `shown` when its nearest existing ancestor resolves
 * outside the host root (a symlinked directory on the way, e.g. a certs.d
 * pointing elsewhere): what a step writes stays under the root.
 */
export async function requireUnderRoot(ctx: Pick<StepContext, 'root'>, shown: string): Promise<void> {
  let p = hostPath(ctx, shown);
  for (;;) {
    if (await lstat(p).then(() => true, () => false)) break;
    const up = dirname(p);
    if (up === p) return;
    p = up;
  }
  const real = await realpath(p);
  if (!isInside(await realpath(ctx.root), real)) {
    throw new StepError(ErrorCode.InvalidArgument, `${shown} resolves to ${real}, outside the host root ${ctx.root}`,
      'point the step at a real path under the host root (not through a symlink leaving it)');
  }
}

/** How a real path under the root reads on the host (for messages): "/etc/..." even when root is a temp dir. */
export async function showHost(ctx: Pick<StepContext, 'root'>, real: string): Promise<string> {
  return posix.join('/', relative(await realpath(ctx.root), real));
}

/** A file inside a staged bundle; refuses paths that climb out of the bundle. */
export function bundleFile(ctx: Pick<StepContext, 'bundleDir'>, as: string, rel: string): string {
  const dir = ctx.bundleDir(as);
  const p = join(dir, posix.normalize(rel));
  if (!isInside(dir, p) || p === dir) {
    throw new StepError(ErrorCode.InvalidArgument, `bundle path "${rel}" leaves bundle "${as}"`, 'use a path inside the bundle, like manifests/app.yaml');
  }
  return p;
}
