/**
 * `file.install` on the host: a bundle file or inline content to `dest`,
 * with mode and owner, atomically; unchanged when sha256, mode and owner
 * already match.
 */
import { stat } from 'node:fs/promises';
import { ErrorCode } from '../../../common/src/errors.js';
import type { FileInstallArgs, FileSource } from '../../../common/src/plan/steps/file-install.js';
import type { StepContext, StepExecutor } from './step.js';
import { bundleFile } from './util/host-path.js';
import { installFile, type NewContent } from './util/install-file.js';
import { guarded, StepError } from './step-error.js';

/** Where a FileSource's bytes are on this host; a bundle file must exist and be a regular file. */
export async function sourceContent(ctx: StepContext, source: FileSource): Promise<NewContent> {
  if ('content' in source) return { bytes: Buffer.from(source.content, 'utf8') };
  const file = bundleFile(ctx, source.bundle, source.src);
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile()) {
    throw new StepError(ErrorCode.NotFound, `bundle "${source.bundle}" has no file ${source.src}`,
      'check "src" against the bundle manifest (ferry bundle show), or rebuild the bundle with the file');
  }
  return { file };
}

/** The `file.install` executor. */
export const fileInstallExecutor: StepExecutor<FileInstallArgs> = {
  type: 'file.install',
  run: (args, ctx) => guarded(ctx.signal, async () => installFile(ctx, args.dest, await sourceContent(ctx, args.source), args)),
};
