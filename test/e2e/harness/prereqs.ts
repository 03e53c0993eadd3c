/**
 * What the simulated hosts need from the machine, installed on demand.
 *
 * CI starts from a clean Debian machine, so the harness installs its own Debian packages
 * instead of relying on whatever a developer installed by hand. `--no-install-recommends`
 * matters: systemd-container recommends libnss-mymachines, which edits the machine's
 * /etc/nsswitch.conf. When the harness cannot run at all (not root, not Linux, no apt) it
 * returns a reason for the test to print as its skip message instead of failing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostHierarchies } from './cgroups.js';
import { run } from './proc.js';

/** Debian packages the harness needs, and a program from each that proves it is installed. */
export const REQUIRED_PACKAGES: ReadonlyArray<{ pkg: string; program: string }> = [
  { pkg: 'containerd', program: '/usr/bin/containerd' },
  { pkg: 'runc', program: '/usr/sbin/runc' },
  { pkg: 'iptables', program: '/usr/sbin/iptables' },
  { pkg: 'systemd-container', program: '/usr/bin/systemd-nspawn' },
];

/** Programs that come with any Debian base system but are checked anyway. */
const BASE_PROGRAMS = ['/usr/bin/nsenter', '/usr/bin/unshare', '/usr/sbin/ip', '/usr/bin/timeout', '/usr/lib/systemd/systemd'];

/** Outcome of {@link ensurePrereqs}. */
export interface PrereqResult {
  ok: boolean;
  /** Why the harness cannot run here (set when !ok): print it as the skip reason. */
  skipReason?: string;
  /** Packages this call installed (empty when all were present). */
  installed: string[];
}

let aptUpdated = false;
let cached: Promise<PrereqResult> | undefined;

async function installed(pkg: string): Promise<boolean> {
  const r = await run(['dpkg-query', '-W', '-f=${Status}', pkg]);
  return r.exitCode === 0 && r.stdout.includes('install ok installed');
}

/**
 * Checks root, Linux, overlayfs, cgroups and the base programs, and installs missing Debian
 * packages with apt-get (running `apt-get update` once first). Memoized per process.
 * Pass `install: false` to only check.
 */
export function ensurePrereqs(opts: { install?: boolean; log?: (m: string) => void } = {}): Promise<PrereqResult> {
  cached ??= check(opts.install ?? true, opts.log ?? (() => undefined));
  return cached;
}

async function check(install: boolean, log: (m: string) => void): Promise<PrereqResult> {
  const skip = (skipReason: string): PrereqResult => ({ ok: false, skipReason, installed: [] });
  if (process.platform !== 'linux') return skip(`simulated hosts need Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) return skip('simulated hosts need root (network namespaces, mounts, cgroups, systemd-nspawn)');
  if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) {
    // The module may just not be loaded yet; modprobe is harmless when it is built in.
    await run(['modprobe', 'overlay']).catch(() => undefined);
    if (!readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return skip('kernel has no overlayfs');
  }
  if (hostHierarchies().length === 0) return skip('no usable cgroup hierarchy under /sys/fs/cgroup');
  const missingBase = BASE_PROGRAMS.filter((p) => !existsSync(p));
  if (missingBase.length) return skip(`missing base programs: ${missingBase.join(', ')}`);

  const missing: string[] = [];
  for (const { pkg, program } of REQUIRED_PACKAGES) {
    if (!existsSync(program) || !(await installed(pkg))) missing.push(pkg);
  }
  if (missing.length === 0) return { ok: true, installed: [] };
  if (!install) return skip(`missing Debian packages: ${missing.join(' ')}`);
  if (!existsSync('/usr/bin/apt-get')) return skip(`missing ${missing.join(' ')} and no apt-get to install them`);

  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } as Record<string, string>;
  // Other engineers' runs may hold the dpkg lock for a while; wait for it instead of failing.
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  if (!aptUpdated) {
    log('apt-get update');
    const u = await run(['apt-get', ...lock, 'update'], { env, timeoutMs: 300_000 });
    if (u.exitCode !== 0) return skip(`apt-get update failed: ${u.stderr.trim().split('\n').pop()}`);
    aptUpdated = true;
  }
  log(`apt-get install ${missing.join(' ')}`);
  const r = await run(['apt-get', ...lock, 'install', '-y', '--no-install-recommends', ...missing], { env, timeoutMs: 600_000 });
  if (r.exitCode !== 0) return skip(`apt-get install ${missing.join(' ')} failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const still = REQUIRED_PACKAGES.filter(({ program }) => !existsSync(program)).map((p) => p.pkg);
  if (still.length) return skip(`installed but still missing: ${still.join(' ')}`);
  return { ok: true, installed: missing };
}
