/**
 * Static pieces of a simulated host: which units are masked, the shell snippets used to
 * write files inside a host, and the launcher PID file. Kept apart from host.ts so that file
 * reads as the host's life cycle.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTimeOf } from './proc.js';

/** PATH inside hosts (root's default on Debian). */
export const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Units a test host does not run. The machine's / is the lower layer, so everything enabled
 * there would start in every host: databases, timers (apt, man-db...), gettys (each holds
 * inotify instances, the limiting resource with many hosts), time sync (would fight over the
 * one clock), pstore, password agents, remote-fs. containerd is masked too until a test calls
 * `enableContainerd()` — it is the most expensive thing on an idle host.
 */
export function defaultMasks(): string[] {
  const fixed = [
    'containerd.service',
    'postgresql.service',
    'getty@tty1.service',
    'getty.target',
    'console-getty.service',
    'systemd-timesyncd.service',
    'systemd-pstore.service',
    'systemd-ask-password-console.path',
    'systemd-ask-password-wall.path',
    'remote-fs.target',
    'e2scrub_reap.service',
  ];
  // Every timer the machine has (apt-daily, man-db, fstrim, postgres dumps...): none belong in a test.
  const timers = new Set<string>();
  for (const dir of ['/usr/lib/systemd/system', '/lib/systemd/system', '/etc/systemd/system', '/etc/systemd/system/timers.target.wants']) {
    try {
      for (const n of readdirSync(dir)) if (n.endsWith('.timer') && !n.includes('@')) timers.add(n);
    } catch {
      /* directory absent on this machine */
    }
  }
  return [...fixed, ...[...timers].sort()];
}

/**
 * Writes stdin to "$1" with octal mode "$2", atomically (temp + rename) so a reader inside
 * the host — e.g. systemd reading a unit file — never sees half a file.
 */
export const writeFileScript = [
  'set -e',
  'umask 077',
  'mkdir -p -- "$(dirname -- "$1")"',
  't="$1.ferry-tmp.$$"',
  'cat > "$t"',
  'chmod "$2" "$t"',
  'mv -f -- "$t" "$1"',
].join('\n');

/**
 * For a stopped host: mounts its overlay ($1 upper, $2 work, $3 mount point) in the calling
 * private mount namespace and runs the remaining arguments chrooted into it. The mount dies
 * with the namespace, so nothing is left mounted even if the command fails.
 */
export const offlineScript = [
  'set -e',
  'mount -t overlay overlay -o "lowerdir=/,upperdir=$1,workdir=$2" "$3"',
  'r="$3"',
  'shift 3',
  'exec chroot "$r" "$@"',
].join('\n');

/**
 * The launcher's PID from H/launcher.pid, or undefined when the file is missing or the PID
 * now belongs to another process (the file stores the start time to tell them apart).
 */
export function readLauncherPid(hostDir: string): number | undefined {
  try {
    const [pid, start] = readFileSync(join(hostDir, 'launcher.pid'), 'utf8').trim().split(/\s+/).map(Number);
    if (!pid) return undefined;
    if (start && startTimeOf(pid) !== start) return undefined;
    return pid;
  } catch {
    return undefined;
  }
}
