/**
 * Static pieces of a simulated host: its seeded upper layer, which units are masked, the
 * launcher script, the shell snippets used to write files inside it, and the launcher PID file. Kept apart from host.ts so that file
 * reads as the host's life cycle.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FABRIC_IP } from './fabric.js';
import { shQuote, startTimeOf } from './proc.js';
import type { HostSpec } from './host.js';

/** The `--reboot` exit status of systemd-nspawn; the launcher loops on it like a real machine. */
export const NSPAWN_REBOOT_EXIT = 133;

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

/**
 * Creates the host's directories and seeds its upper layer before first boot: hostname,
 * hosts, a fresh machine-id (shared machine-ids confuse journald and D-Bus), resolv.conf
 * pointing at the bridge (an unreachable resolver makes every lookup hang ~20 s; the bridge
 * refuses port 53 at once), and /dev/null masks for units a test host must not run.
 */
export function seedHost(spec: HostSpec, extraMasks: readonly string[] = []): void {
  for (const d of ['upper/etc/systemd/system', 'work', 'root', 'containerd']) {
    mkdirSync(join(spec.dir, d), { recursive: true });
  }
  const etc = join(spec.dir, 'upper', 'etc');
  writeFileSync(join(etc, 'hostname'), `${spec.name}\n`);
  writeFileSync(join(etc, 'hosts'),
    `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${spec.ip}\t${spec.name}\n${FABRIC_IP}\tfabric\n`);
  writeFileSync(join(etc, 'machine-id'), `${randomBytes(16).toString('hex')}\n`);
  writeFileSync(join(etc, 'resolv.conf'), `nameserver ${FABRIC_IP}\noptions timeout:1 attempts:1\n`);
  for (const unit of [...defaultMasks(), ...extraMasks]) {
    try {
      symlinkSync('/dev/null', join(etc, 'systemd/system', unit));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/**
 * The launcher script (H/launch.sh): moves itself into the host's cgroups, enters a private
 * mount namespace, mounts /run (tmpfs, or nspawn writes to the machine's /run and refuses)
 * and the overlay, hides the harness directory, and runs systemd-nspawn — again whenever it
 * exits 133 (reboot). nspawn flags are the ones measured to work (see HOSTS.md).
 */
/** The repository this harness runs from (build/test/e2e/harness/ → four levels up). */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

export function launcherScript(spec: HostSpec): string {
  const q = shQuote;
  const root = join(spec.dir, 'root');
  const nspawn = [
    'systemd-nspawn', '--boot', `--machine=${spec.name}`, '--register=no',
    // Without --keep-unit nspawn asks the machine's (absent) systemd for a scope: "Failed to open system bus".
    '--keep-unit',
    `--directory=${root}`, `--network-namespace-path=${spec.nsFile}`,
    `--bind=${join(spec.dir, 'containerd')}:/var/lib/containerd`,
    // nspawn puts a tmpfs on /tmp: a checkout under /tmp (CI clones may live there)
    // would vanish inside hosts, and tests run build/ code in them. Bind it back, read-only.
    `--bind-ro=${REPO_ROOT}`,
    // Without all capabilities iptables inside fails with "you must be root".
    '--capability=all', '--resolv-conf=off', '--timezone=off', '--link-journal=no', '--console=read-only',
  ].map(q).join(' ');
  return [
    '#!/bin/sh',
    `# Generated by the Ferry test harness: launcher of host ${spec.name}. Safe to read, do not edit.`,
    'set -eu',
    // Own cgroups first, before nspawn exists, so everything the host starts lands there.
    ...spec.cgroupDirs.map((d) => `echo $$ > ${q(join(d, 'cgroup.procs'))}`),
    `exec unshare --mount --propagation private /bin/sh -eu -c ${q([
      'mount -t tmpfs -o mode=0755 tmpfs /run',
      `mount -t overlay overlay -o ${q(`lowerdir=/,upperdir=${join(spec.dir, 'upper')},workdir=${join(spec.dir, 'work')}`)} ${q(root)}`,
      // The lower layer is the machine's /, which contains every host's upper dir: hide them.
      `mount -t tmpfs -o mode=0755,size=64k tmpfs ${q(root + spec.hideDir)}`,
      'while :; do',
      '  rc=0',
      `  SYSTEMD_NSPAWN_API_VFS_WRITABLE=network ${nspawn} || rc=$?`,
      `  echo "$rc" > ${q(join(spec.dir, 'exit-status'))}`,
      `  [ "$rc" -eq ${NSPAWN_REBOOT_EXIT} ] || exit "$rc"`,
      'done',
    ].join('\n'))}`,
    '',
  ].join('\n');
}
