/**
 * User and group names to ids, read from the host's /etc/passwd and
 * /etc/group under ctx.root (so tests use their own), with `getent` as a
 * fallback on the real root for directory-service accounts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode } from '../../../../common/src/errors.js';
import { StepError } from '../step-error.js';

function lookup(root: string, db: 'passwd' | 'group', name: string): number | undefined {
  try {
    for (const line of readFileSync(join(root, 'etc', db), 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
    }
  } catch {
    // no such file under this root: fall through
  }
  if (root !== '/') return undefined;
  try {
    const f = execFileSync('getent', [db, name], { encoding: 'utf8', timeout: 5_000 }).split(':');
    return f[2] !== undefined && /^\d+$/.test(f[2]) ? Number(f[2]) : undefined;
  } catch {
    return undefined;
  }
}

/** uid for a user name or numeric id. */
export function resolveUid(root: string, owner: string): number {
  if (/^\d+$/.test(owner)) return Number(owner);
  const id = lookup(root, 'passwd', owner);
  if (id === undefined) {
    throw new StepError(ErrorCode.NotFound, `user "${owner}" does not exist on this host (not in /etc/passwd)`,
      'create the user in an earlier step, or give a numeric uid');
  }
  return id;
}

/** gid for a group name or numeric id. */
export function resolveGid(root: string, group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const id = lookup(root, 'group', group);
  if (id === undefined) {
    throw new StepError(ErrorCode.NotFound, `group "${group}" does not exist on this host (not in /etc/group)`,
      'create the group in an earlier step, or give a numeric gid');
  }
  return id;
}
