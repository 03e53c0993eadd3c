/**
 * Free-space check before a stage starts: running out half way through a
 * 2 GiB bundle on an edge box wastes the link and can take down whatever
 * else writes to that disk (journald, containerd), so refuse up front.
 */
import { statfs } from 'node:fs/promises';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';

/** The part of `fs.statfs` the check needs; injectable so tests can fake a full disk. */
export type StatfsFn = (path: string) => Promise<{ bavail: number | bigint; bsize: number | bigint }>;

/** `fs.promises.statfs`. */
export const realStatfs: StatfsFn = (path) => statfs(path);

/** "1.5 GiB (1610612736 bytes)": readable, and exact for whoever compares with `df -B1`. */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[u]} (${n} bytes)`;
}

/**
 * Throws DISK_FULL unless the filesystem holding `dir` has at least `needed`
 * bytes available to unprivileged users (`bavail`: the root-reserved blocks
 * are left for the system, not eaten by bundles). `what` (plural) names what needs the space.
 */
export async function ensureFreeSpace(dir: string, needed: number, what: string, statfsFn: StatfsFn = realStatfs): Promise<number> {
  const s = await statfsFn(dir);
  const available = Number(s.bavail) * Number(s.bsize);
  if (available < needed) {
    throw new FerryError(ErrorCode.DiskFull,
      `not enough free space in ${dir}: ${what} need ${formatBytes(needed)}, but only ${formatBytes(available)} is available`,
      `free at least ${formatBytes(needed - available)} on that filesystem (bundles this host no longer needs, unused container images, old logs) or move the agent's state directory to a larger disk, then stage again`);
  }
  return available;
}
