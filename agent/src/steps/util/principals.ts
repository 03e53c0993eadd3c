/**
 * User and group names to ids, read from the host's /etc/passwd and
 * /etc/group under ctx.root (so tests use their own), with `getent` as a
 * fallback on the real root for directory-service accounts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode } from '../../../../common/src/errors.js';
import type { StepContext } from '../step.js';
import { StepError } from '../step-error.js';
import { runCommand } from '../sys/run.js';

type IdContext = Pick<StepContext, 'root' | 'signal' | 'output' | 'track'>;

async function lookup(ctx: IdContext, db: 'passwd' | 'group', name: string): Promise<number | undefined> {
  try {
    for (const line of readFileSync(join(ctx.root, 'etc', db), 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
    }
  } catch {
    // no such file under this root: fall through
  }
  if (ctx.root !== '/') return undefined;
  // Directory-service accounts (LDAP, sssd) are only known to getent; bounded, as a directory server can hang.
  const r = await runCommand(ctx, ['getent', db, name], { stream: false, timeoutMs: 5_000 }).catch((e: unknown) => {
    if (ctx.signal.aborted) throw e;
    return undefined; // no getent on this host: the name is unknown
  });
  const f = r?.exitCode === 0 ? r.stdout.split(':') : [];
  return f[2] !== undefined && /^\d+$/.test(f[2]) ? Number(f[2]) : undefined;
}

/** The uid of a user (db passwd) or gid of a group (db group), by name or number. */
export async function resolveId(ctx: IdContext, db: 'passwd' | 'group', name: string): Promise<number> {
  if (/^\d+$/.test(name)) return Number(name);
  const id = await lookup(ctx, db, name);
  if (id === undefined) {
    const what = db === 'passwd' ? 'user' : 'group';
    throw new StepError(ErrorCode.NotFound, `${what} "${name}" does not exist on this host (not in /etc/${db})`,
      `create the ${what} in an earlier step, or give a numeric ${db === 'passwd' ? 'uid' : 'gid'}`);
  }
  return id;
}
