/**
 * Installing a file's content at a host path with mode and owner — shared by
 * file.install and template.render. Unchanged when sha256, mode and owner
 * already match; only attributes differ → fixed in place; otherwise an
 * atomic replace (with an optional backup). Check mode reports the diff.
 */
import { lstat, mkdir, readFile, rmdir, chmod, chown } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode } from '../../../../common/src/errors.js';
import type { FileAttrs } from '../../../../common/src/plan/steps/file-install.js';
import type { StepOutcome } from '../../../../common/src/plan/types.js';
import type { StepContext } from '../step.js';
import { writeFileAtomicAsync } from '../../../../common/src/secure-fs.js';
import { fmtMode, makeBackup, sha256, sha256File, statIfExists, SYSTEM_DIR_MODE } from './file-ops.js';
import { hostPath, realTarget, requireUnderRoot, showHost } from './host-path.js';
import { resolveId } from './principals.js';
import { StepError } from '../step-error.js';
import { unifiedDiff } from './text-diff.js';

/** New content: bytes in memory, or a (possibly large) file to copy. */
export type NewContent = { bytes: Buffer } | { file: string };

/** Text diffs only for files this small that look like text. */
const DIFF_MAX_BYTES = 1024 * 1024;

async function asText(c: NewContent | undefined, size: number): Promise<string | undefined> {
  if (!c) return '';
  if (size > DIFF_MAX_BYTES) return undefined;
  const b = 'bytes' in c ? c.bytes : await readFile(c.file);
  return b.includes(0) ? undefined : b.toString('utf8');
}

/** Missing parent directories of `dir`, outermost first. */
async function missingDirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (let d = dir; !(await statIfExists(d)); d = dirname(d)) out.unshift(d);
  return out;
}

/** What installFile did: the step outcome, plus where the backup of the replaced file went (as the host sees it). */
export type InstallOutcome = StepOutcome & { backup?: string };

/** Puts `content` at host path `dest` with `attrs`; the outcome says what changed. */
export async function installFile(ctx: StepContext, dest: string, content: NewContent, attrs: FileAttrs): Promise<InstallOutcome> {
  await requireUnderRoot(ctx, dest);
  let path = hostPath(ctx, dest);
  const link = await lstat(path).catch(() => undefined);
  if (link?.isSymbolicLink()) path = await realTarget(ctx, path, dest);
  const old = await statIfExists(path);
  if (old && !old.isFile()) throw new StepError(ErrorCode.InvalidArgument, `${dest} exists and is not a regular file`, 'remove it or choose another "dest"');

  const size = 'bytes' in content ? content.bytes.length : (await statIfExists(content.file))?.size ?? 0;
  const hash = 'bytes' in content ? sha256(content.bytes) : await sha256File(content.file);
  const uid = attrs.owner !== undefined ? await resolveId(ctx, 'passwd', attrs.owner) : old?.uid ?? process.getuid?.() ?? 0;
  const gid = attrs.group !== undefined ? await resolveId(ctx, 'group', attrs.group) : old?.gid ?? process.getgid?.() ?? 0;
  const mode = attrs.mode ?? (old ? old.mode & 0o7777 : 0o644);
  const oldHash = old && old.size === size ? await sha256File(path) : undefined;
  const sameContent = oldHash === hash;
  const changes: string[] = [];
  if (!old) changes.push(`created (${size} bytes, ${fmtMode(mode)}, ${uid}:${gid})`);
  else {
    if (!sameContent) changes.push('content');
    if ((old.mode & 0o7777) !== mode) changes.push(`mode ${fmtMode(old.mode)} → ${fmtMode(mode)}`);
    if (old.uid !== uid || old.gid !== gid) changes.push(`owner ${old.uid}:${old.gid} → ${uid}:${gid}`);
  }
  if (changes.length === 0) return { status: 'unchanged', message: `${dest} already matches (sha256 ${hash.slice(0, 12)}…, ${fmtMode(mode)}, ${uid}:${gid})` };

  const diff = await describeChange(dest, path, old ? { size: old.size } : undefined, content, size, hash, oldHash, sameContent, changes);
  for (const line of diff.trimEnd().split('\n')) ctx.output(line);
  if (ctx.check) return { status: 'changed', diff, message: `check mode: would ${old ? 'update' : 'create'} ${dest}: ${changes.join(', ')}` };

  if (old && sameContent) {
    // Only attributes differ: fix them in place, no rewrite, no backup needed.
    await chown(path, uid, gid);
    await chmod(path, mode);
    return { status: 'changed', diff, message: `updated ${dest}: ${changes.join(', ')}` };
  }
  const backup = old && attrs.backup ? await makeBackup(path) : undefined;
  const made = await missingDirs(dirname(path));
  try {
    // chmod too: the umask (077 under some service managers) must not make a config directory private.
    for (const d of made) { await mkdir(d, { mode: SYSTEM_DIR_MODE }); await chmod(d, SYSTEM_DIR_MODE); }
    await writeFileAtomicAsync(path, 'bytes' in content ? content.bytes : { copyFrom: content.file }, { mode, uid, gid, dirMode: false });
  } catch (e) {
    // Leave the host as it was: remove directories this step made.
    for (const d of made.reverse()) await rmdir(d).catch(() => undefined);
    throw e;
  }
  const shownBackup = backup ? await showHost(ctx, backup) : undefined;
  const notes = [made.length ? `made ${made.length} director${made.length > 1 ? 'ies' : 'y'}` : '', shownBackup ? `backup ${shownBackup}` : ''].filter(Boolean);
  return {
    status: 'changed', diff, message: `${old ? 'updated' : 'installed'} ${dest}: ${changes.join(', ')}${notes.length ? ` (${notes.join('; ')})` : ''}`,
    ...(shownBackup ? { backup: shownBackup } : {}),
  };
}

async function describeChange(dest: string, path: string, old: { size: number } | undefined, content: NewContent, size: number,
  hash: string, oldHash: string | undefined, sameContent: boolean, changes: string[]): Promise<string> {
  const attrLines = changes.filter((c) => c !== 'content').map((c) => `# ${dest}: ${c}`);
  if (sameContent) return `${attrLines.join('\n')}\n`;
  const before = old ? await asText({ file: path }, old.size) : '';
  const after = await asText(content, size);
  const body = before !== undefined && after !== undefined
    ? unifiedDiff(before, after, old ? dest : '/dev/null', dest)
    : `# ${dest}: binary content ${old ? `sha256 ${(oldHash ?? (await sha256File(path))).slice(0, 12)}… (${old.size} bytes)` : 'none'} → sha256 ${hash.slice(0, 12)}… (${size} bytes)\n`;
  return attrLines.length ? `${attrLines.join('\n')}\n${body}` : body;
}
