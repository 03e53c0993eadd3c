/**
 * `hosts.entry` on the host (args: common/src/plan/steps/hosts-entry.ts). The resolver takes
 * the first /etc/hosts line that names a host, so pinning a name means: it appears only on
 * lines with the wanted address. Lines that give one of the names another address lose that
 * name (and go away if nothing is left on them); a missing name is added on one new line
 * marked `# ferry hosts.entry`. Every other line — comments, spacing, order — stays byte for
 * byte. The file is installed through installFile (diff, check mode, backup, atomic write
 * keeping the file's mode and owner), so a second run is `unchanged`.
 */
import { lstat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { ErrorCode } from '../../../common/src/errors.js';
import type { HostsEntryArgs } from '../../../common/src/plan/steps/hosts-entry.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { guarded, StepError } from './step-error.js';
import { readTextIfExists } from './util/file-ops.js';
import { hostPath, realTarget } from './util/host-path.js';
import { installFile } from './util/install-file.js';

/** The marker on lines this step adds. */
export const HOSTS_MARK = '# ferry hosts.entry';

/** Same address, whatever the notation (`::1` and `0:0::1`, `10.0.0.1` and `10.0.0.1`). */
function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  if (isIP(a) !== 6 || isIP(b) !== 6) return false;
  const full = (s: string) => new URL(`http://[${s}]/`).hostname;
  try { return full(a) === full(b); } catch { return false; }
}

/** /etc/hosts text with the names pinned (or removed); equal to `text` when nothing must change. */
export function editHostsText(text: string, args: Pick<HostsEntryArgs, 'address' | 'names' | 'state'>): string {
  const wanted = new Set(args.names);
  const satisfied = new Set<string>();
  const lines = text.split('\n');
  const out: string[] = [];
  lines.forEach((line) => {
    const hash = line.indexOf('#');
    const body = hash >= 0 ? line.slice(0, hash) : line;
    const tokens = body.trim().split(/\s+/).filter(Boolean);
    if (tokens.length < 2) { out.push(line); return; }
    const [addr, ...names] = tokens as [string, ...string[]];
    const ours = args.state === 'present' && sameAddress(addr, args.address);
    if (ours) {
      for (const n of names) if (wanted.has(n.toLowerCase())) satisfied.add(n.toLowerCase());
      out.push(line);
      return;
    }
    const keep = names.filter((n) => !wanted.has(n.toLowerCase()));
    if (keep.length === names.length) { out.push(line); return; }
    if (keep.length === 0) return; // the line only named hosts we pin elsewhere
    out.push(`${addr}\t${keep.join(' ')}${hash >= 0 ? ` ${line.slice(hash)}` : ''}`);
  });
  let next = out.join('\n');
  const missing = args.state === 'present' ? args.names.filter((n) => !satisfied.has(n)) : [];
  if (missing.length) {
    if (next !== '' && !next.endsWith('\n')) next += '\n';
    next += `${args.address}\t${missing.join(' ')}\t${HOSTS_MARK}\n`;
  }
  return next;
}

async function ensureEntry(args: HostsEntryArgs, ctx: StepContext): Promise<StepOutcome> {
  let path = hostPath(ctx, args.file);
  const st = await lstat(path).catch(() => undefined);
  if (st?.isSymbolicLink()) path = await realTarget(ctx, path, args.file);
  else if (st && !st.isFile()) throw new StepError(ErrorCode.InvalidArgument, `${args.file} is not a regular file`, 'point "file" at the hosts file itself');
  const old = readTextIfExists(path);
  const what = args.state === 'present' ? `${args.names.join(' ')} → ${args.address}` : `${args.names.join(' ')} removed`;
  if (old === undefined && args.state === 'absent') return { status: 'unchanged', message: `${args.file} does not exist: ${what}` };
  const next = editHostsText(old ?? '', args);
  if (next === old) return { status: 'unchanged', message: `${args.file} already has ${what}` };
  try {
    const { backup, ...out } = await installFile(ctx, args.file, { bytes: Buffer.from(next) }, { backup: args.backup, ...(old === undefined ? { mode: 0o644 } : {}) });
    return { ...out, message: `${ctx.check ? 'check mode: would change' : 'changed'} ${args.file}: ${what}${backup ? ` (backup ${backup})` : ''}` };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EBUSY') {
      throw new StepError(ErrorCode.StepCommandFailed, `${args.file} is a mount point (bind-mounted by a container runtime?) and cannot be replaced`,
        'run the agent on the host itself, or pin the name in the file the mount comes from');
    }
    throw e;
  }
}

/** The `hosts.entry` executor. */
export const hostsEntryExecutor: StepExecutor<HostsEntryArgs> = {
  type: 'hosts.entry',
  run: (args, ctx) => guarded(ctx.signal, () => ensureEntry(args, ctx)),
};
