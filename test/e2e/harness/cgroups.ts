/**
 * Per-host cgroups for the simulated hosts.
 *
 * Every host's launcher moves itself into a directory of its own before `systemd-nspawn`
 * starts (nspawn runs with `--keep-unit`, so the container's systemd manages whatever cgroup
 * it was started in). Without this, all hosts' systemd instances would share one cgroup and
 * fight over it. On this machine the layout is "hybrid": a named `systemd` v1 hierarchy, a
 * cgroup2 `unified` hierarchy, and v1 controllers; we use `systemd` + `unified` (what
 * systemd inside needs) plus `memory` (so tests can read what a host costs). On a pure
 * cgroup2 machine the single hierarchy is used instead (not exercised on this machine).
 *
 * Directories are created below the harness process's own cgroup in each hierarchy, so a
 * host's memory is still accounted to whoever runs the tests.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { signal, sleepSync } from './proc.js';

const ROOT = '/sys/fs/cgroup';

/** The hierarchies (mount points) the harness places hosts in, detected once. */
export function hostHierarchies(): string[] {
  if (existsSync(join(ROOT, 'cgroup.controllers'))) return [ROOT]; // pure cgroup2
  return ['systemd', 'unified', 'memory'].map((h) => join(ROOT, h)).filter((p) => existsSync(join(p, 'cgroup.procs')));
}

/** The cgroup path (relative to the hierarchy root) this process is in, per mount point. */
function ownPath(mount: string): string {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  const name = mount === ROOT ? '' : mount.slice(ROOT.length + 1);
  for (const line of lines) {
    const [, ctrls, path] = line.split(':', 3) as [string, string, string];
    const match =
      (mount === ROOT || name === 'unified') ? ctrls === '' :
      name === 'systemd' ? ctrls === 'name=systemd' :
      ctrls.split(',').includes(name);
    if (match) return path;
  }
  return '/';
}

/**
 * Creates `<own cgroup>/<clusterName>/<hostName>` in every host hierarchy and returns the
 * absolute directories (the launcher writes its PID to each `cgroup.procs`).
 */
export function createHostCgroups(clusterName: string, hostName: string): string[] {
  return hostHierarchies().map((mount) => {
    const dir = join(mount, ownPath(mount), clusterName, hostName);
    mkdirSync(dir, { recursive: true });
    return dir;
  });
}

/** The cluster-level cgroup directories (parents of the host ones) for cleanup checks. */
export function clusterCgroupDirs(clusterName: string): string[] {
  return hostHierarchies().map((mount) => join(mount, ownPath(mount), clusterName));
}

/** Memory currently charged to a host, in bytes, or undefined when not measurable. */
export function memoryBytes(dirs: readonly string[]): number | undefined {
  for (const d of dirs) {
    for (const f of ['memory.usage_in_bytes', 'memory.current']) {
      try {
        return Number(readFileSync(join(d, f), 'utf8').trim());
      } catch {
        /* not this hierarchy */
      }
    }
  }
  return undefined;
}

/** PIDs in one cgroup directory (not its children). */
export function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Every PID in `dir` and all its descendants. */
export function cgroupTreePids(dir: string): number[] {
  const out = cgroupPids(dir);
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return out;
  }
  for (const e of entries) out.push(...cgroupTreePids(join(dir, e)));
  return out;
}

/**
 * Removes a cgroup tree depth-first (a cgroup can only be removed once it has no children and
 * no processes). Processes still inside are SIGKILLed first: by the time cleanup runs, anything
 * left in a host's cgroup is a leftover of that host. Returns the directories it could not remove.
 */
export function removeCgroupTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  for (let attempt = 0; attempt < 50; attempt++) {
    const pids = cgroupTreePids(dir);
    if (pids.length === 0) break;
    for (const pid of pids) signal(pid, 'SIGKILL');
    sleepSync(100);
  }
  const failed: string[] = [];
  const walk = (d: string): void => {
    let subs: string[] = [];
    try {
      subs = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const s of subs) walk(join(d, s));
    // rmdir can fail with EBUSY for a moment after the last process exits; retry briefly.
    for (let i = 0; i < 20; i++) {
      try {
        rmdirSync(d);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        sleepSync(50);
      }
    }
    failed.push(d);
  };
  walk(dir);
  return failed;
}
