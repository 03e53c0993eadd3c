/**
 * Teardown of a cluster from its state file alone, and the check that nothing is left.
 *
 * Teardown is synchronous on purpose: it must also run from a process 'exit' handler, where
 * no promise resolves any more, and from a later run that finds the remains of a run that
 * was SIGKILLed (see {@link reapStale}). It only ever touches what the state file names:
 * PIDs (checked against their start time, so a reused PID is never killed), the cluster's
 * directory, its namespace files, its cgroups, and the one sysctl it raised.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { cgroupTreePids, removeCgroupTree } from './cgroups.js';
import { unmountNsDir } from './fabric.js';
import { readLauncherPid } from './host-files.js';
import { allPids, childrenOf, nsLink, pidAlive, releaseStoppedNsenters, signal, sleepSync, startTimeOf } from './proc.js';
import type { HostSpec } from './host.js';

/** Default parent of all cluster directories; override with FERRY_HOSTS_DIR. */
export const DEFAULT_BASE_DIR = '/var/tmp/ferry-hosts';

/** Path of the one sysctl the harness may change. */
export const INOTIFY_INSTANCES = '/proc/sys/fs/inotify/max_user_instances';

/** A process recorded for cleanup: PID plus start time, so a recycled PID is left alone. */
export interface PidRecord {
  pid: number;
  start: number;
}

/** Everything needed to tear a cluster down, persisted as DIR/state.json. */
export interface ClusterState {
  version: 1;
  /** Cluster name: directory name and cgroup directory name. */
  name: string;
  dir: string;
  baseDir: string;
  /** Process that created the cluster; a non-persistent cluster whose owner died is stale. */
  owner: PidRecord;
  /** True for `hosts-cli up`: outlives its creator, removed only by `down`. */
  persistent: boolean;
  hosts: HostSpec[];
  /** Processes started with runInFabric. */
  fabricPids: PidRecord[];
  /** Cluster-level cgroup directories (parents of the host ones). */
  cgroupDirs: string[];
  /** Inodes of the fabric and host network namespaces (to prove they are gone). */
  netnsInodes: number[];
  /** Original and raised value of fs.inotify.max_user_instances, when raised. */
  inotify?: { original: number; raised: number };
}

/** Reads DIR/state.json, or undefined when absent/unreadable. */
export function readState(dir: string): ClusterState | undefined {
  try {
    const s = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as ClusterState;
    return s.version === 1 ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Writes DIR/state.json (synchronously: callers write it before each risky step). */
export function writeState(s: ClusterState): void {
  writeFileSync(join(s.dir, 'state.json'), `${JSON.stringify(s, null, 2)}\n`);
}

function recordAlive(r: PidRecord): boolean {
  return pidAlive(r.pid) && startTimeOf(r.pid) === r.start;
}

/** PIDs belonging to a host right now: launcher, its descendants, and everything in its cgroups. */
function hostPids(h: HostSpec): number[] {
  const out = new Set<number>();
  const launcher = readLauncherPid(h.dir);
  const walk = (p: number, depth: number): void => {
    out.add(p);
    if (depth < 3) for (const c of childrenOf(p)) walk(c, depth + 1);
  };
  if (launcher && pidAlive(launcher)) walk(launcher, 0);
  for (const d of h.cgroupDirs) for (const p of cgroupTreePids(d)) out.add(p);
  return [...out];
}

/**
 * Tears a cluster down completely and synchronously: SIGKILL to every host and fabric process,
 * unmount namespace files, remove cgroups depth-first, restore the sysctl, delete the directory.
 * Returns problems it could not fix (normally none). Graceful stops are the async caller's job.
 */
export function teardownSync(s: ClusterState): string[] {
  const problems: string[] = [];
  // 1. Processes. Hosts first: killing a host's PID 1 takes its whole PID namespace with it.
  for (const r of s.fabricPids) if (recordAlive(r)) signal(r.pid, 'SIGKILL');
  for (let round = 0; round < 60; round++) {
    const pids = s.hosts.flatMap(hostPids).filter((p) => pidAlive(p));
    if (pids.length === 0 && !s.fabricPids.some(recordAlive)) break;
    for (const p of pids) signal(p, 'SIGKILL');
    // A dying host PID 1 waits for every process of its namespace to be reaped, including
    // children of a stopped nsenter outside it (see Host.exec): resume those.
    for (const ns of new Set(pids.map((p) => nsLink(p, 'pid')))) if (ns) releaseStoppedNsenters(ns);
    sleepSync(100);
  }
  // 2. Namespace files (the only mounts the harness makes in the machine's mount namespace).
  const nsDir = join(s.dir, 'ns');
  if (existsSync(nsDir)) {
    let files: string[] = [];
    try {
      files = readdirSync(nsDir).map((n) => join(nsDir, n));
    } catch {
      /* unreadable: unmount the directory anyway */
    }
    unmountNsDir(nsDir, files);
  }
  // 3. Cgroups, depth-first; the kernel refuses to remove one that still has children or tasks.
  const hostCgroups = s.hosts.flatMap((h) => h.cgroupDirs);
  for (const d of [...hostCgroups, ...s.cgroupDirs]) {
    const failed = removeCgroupTree(d);
    if (failed.length) problems.push(`cgroups not removed: ${failed.join(', ')}`);
  }
  // 4. Sysctl: restore only if nobody changed it after us.
  if (s.inotify) {
    try {
      const now = Number(readFileSync(INOTIFY_INSTANCES, 'utf8').trim());
      if (now === s.inotify.raised) writeFileSync(INOTIFY_INSTANCES, `${s.inotify.original}\n`);
    } catch (e) {
      problems.push(`cannot restore fs.inotify.max_user_instances: ${String(e)}`);
    }
  }
  // 5. The directory — but never one that still has something mounted below it, where
  // rm -r would cross into a live mount.
  if (existsSync(s.dir)) {
    const mounted = mountsUnder(s.dir, [process.pid]);
    if (mounted.length) {
      problems.push(`not deleting ${s.dir}: still mounted: ${mounted.join(', ')}`);
    } else {
      assertInside(s.baseDir, s.dir);
      rmSync(s.dir, { recursive: true, force: true });
    }
  }
  return problems;
}

/** Refuses to delete anything that is not strictly inside the base directory. */
function assertInside(base: string, dir: string): void {
  const b = resolve(base) + sep;
  if (!resolve(dir).startsWith(b) || resolve(dir) === resolve(base)) {
    throw new Error(`refusing to delete ${dir}: not inside ${base}`);
  }
}

/** Mount points at or below `dir` as seen by the given processes' mount namespaces. */
export function mountsUnder(dir: string, pids: readonly number[]): string[] {
  const out = new Set<string>();
  const prefix = resolve(dir);
  for (const pid of pids) {
    let txt = '';
    try {
      txt = readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
    } catch {
      continue;
    }
    for (const line of txt.split('\n')) {
      const mp = line.split(' ')[4];
      if (mp && (mp === prefix || mp.startsWith(prefix + '/'))) out.add(`${mp} (pid ${pid})`);
    }
  }
  return [...out];
}

/**
 * Everything a destroyed cluster could have left behind, as human-readable problems; an
 * empty list means clean. Checks every process on the machine: its mounts (which also finds
 * overlays in private mount namespaces), its network namespace, its command line; plus the
 * recorded PIDs, cgroup directories, the directory itself and the sysctl.
 */
export function findLeftovers(s: ClusterState, hostPidRecords: readonly PidRecord[] = []): string[] {
  const problems: string[] = [];
  if (existsSync(s.dir)) problems.push(`directory still exists: ${s.dir}`);
  for (const d of [...s.cgroupDirs, ...s.hosts.flatMap((h) => h.cgroupDirs)]) {
    if (existsSync(d)) problems.push(`cgroup still exists: ${d}`);
  }
  for (const r of [...s.fabricPids, ...hostPidRecords]) {
    if (recordAlive(r)) problems.push(`process still alive: ${r.pid}`);
  }
  const inodes = new Set(s.netnsInodes.map((i) => `net:[${i}]`));
  const pids = allPids().filter((p) => p !== process.pid);
  for (const m of mountsUnder(s.dir, [process.pid, ...pids])) problems.push(`still mounted: ${m}`);
  for (const pid of pids) {
    try {
      const net = readlinkSync(`/proc/${pid}/ns/net`);
      if (inodes.has(net)) problems.push(`process ${pid} still in a cluster network namespace (${net})`);
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(s.dir)) problems.push(`process ${pid} still refers to ${s.dir}: ${cmd.replace(/\0/g, ' ').trim()}`);
    } catch {
      /* process exited meanwhile */
    }
  }
  if (s.inotify) {
    const now = Number(readFileSync(INOTIFY_INSTANCES, 'utf8').trim());
    if (now !== s.inotify.original) problems.push(`fs.inotify.max_user_instances is ${now}, was ${s.inotify.original}`);
  }
  return problems;
}

/**
 * Tears down clusters under `baseDir` left by runs that died without cleaning up (SIGKILL,
 * machine-level timeout): non-persistent clusters whose owner process is gone. Returns the
 * directories it removed. Persistent (`hosts-cli up`) clusters are left for `down`.
 */
export function reapStale(baseDir: string): string[] {
  const reaped: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(baseDir);
  } catch {
    return reaped;
  }
  for (const n of names) {
    const s = readState(join(baseDir, n));
    if (!s || s.persistent || recordAlive(s.owner)) continue;
    teardownSync(s);
    reaped.push(s.dir);
  }
  return reaped;
}
