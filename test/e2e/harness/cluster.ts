/**
 * A cluster of simulated hosts on one fabric, and the guarantee that it is always cleaned up.
 *
 * `Cluster.create()` records everything it makes in DIR/state.json *before* making it, so
 * teardown works from that file alone: from `destroy()`, from the process 'exit' handler, on
 * SIGINT/SIGTERM/SIGHUP, from `hosts-cli down`, and from the next run's {@link reapStale}
 * when this process was SIGKILLed.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { clusterCgroupDirs, createHostCgroups } from './cgroups.js';
import {
  DEFAULT_BASE_DIR, INOTIFY_INSTANCES, findLeftovers, readState, reapStale, teardownSync, writeState,
  type ClusterState, type PidRecord,
} from './cleanup.js';
import { Fabric, createNetns, hostIp, netnsInode, prepareNsDir, type FabricSpawnOptions } from './fabric.js';
import { Host, type BootState } from './host.js';
import { readLauncherPid } from './host-files.js';
import { pidAlive, signal, startTimeOf, waitFor, type ExecResult, type RunOptions } from './proc.js';

/** Options for {@link Cluster.create}. */
export interface ClusterOptions {
  /** Number of hosts, h1..hN (1..240). */
  hosts: number;
  /** Parent directory of cluster directories (default FERRY_HOSTS_DIR or /var/tmp/ferry-hosts). */
  baseDir?: string;
  /** Cluster name = directory and cgroup name (default: unique per process). */
  name?: string;
  /** Survive the creating process (hosts-cli); otherwise torn down at exit. */
  persistent?: boolean;
  /** Boot timeout per host (default 60 s). */
  bootTimeoutMs?: number;
  /** Extra units to mask in every host. */
  extraMasks?: string[];
  /** Progress messages (default: silent). */
  log?: (msg: string) => void;
}

/** A process started in the fabric namespace by {@link Cluster.runInFabric}. */
export interface FabricProcess {
  pid: number;
  child: ChildProcess;
  /** stdout+stderr collected so far (when piped). */
  output(): string;
  /** Resolves when the output matches `re` (e.g. a "listening" line); rejects on exit or timeout. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves when the process is gone. */
  stop(timeoutMs?: number): Promise<void>;
}

const live = new Set<Cluster>();
let handlersInstalled = false;

/** Installs once per process: exit → synchronous teardown; signals → async destroy, then exit. */
function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        c.destroySync();
      } catch (e) {
        process.stderr.write(`ferry hosts harness: ${String(e)}\n`);
      }
    }
  });
  const onSignal = (sig: NodeJS.Signals, code: number) => {
    process.once(sig, () => {
      process.stderr.write(`\nferry hosts harness: ${sig}: destroying ${live.size} cluster(s)\n`);
      const all = Promise.all([...live].map((c) => c.destroy({ graceful: false }).catch(() => undefined)));
      const timer = setTimeout(() => process.exit(code), 20_000);
      void all.then(() => {
        clearTimeout(timer);
        process.exit(code);
      });
    });
  };
  onSignal('SIGINT', 130);
  onSignal('SIGTERM', 143);
  onSignal('SIGHUP', 129);
}

/** A fabric plus N hosts. */
export class Cluster {
  readonly hosts: Host[];
  readonly fabric: Fabric;
  /** Milliseconds each host took from launch to "boot finished" (set by create). */
  readonly bootMs: Map<string, number> = new Map();
  private destroyed = false;
  /** Host PID 1s and launchers seen, so leftovers() can prove they are gone. */
  private readonly seenHostPids: PidRecord[] = [];

  private constructor(readonly state: ClusterState) {
    this.fabric = new Fabric(join(state.dir, 'ns'));
    this.hosts = state.hosts.map((h) => new Host(h, this.fabric));
  }

  /** Cluster directory. */
  get dir(): string {
    return this.state.dir;
  }

  /**
   * Creates the fabric and `hosts` hosts in parallel and boots them. On any failure the
   * partial cluster is torn down before the error is rethrown.
   */
  static async create(opts: ClusterOptions): Promise<Cluster> {
    const n = opts.hosts;
    hostIp(n); // validates the count against the address plan
    const log = opts.log ?? (() => undefined);
    const baseDir = resolve(opts.baseDir ?? process.env.FERRY_HOSTS_DIR ?? DEFAULT_BASE_DIR);
    mkdirSync(baseDir, { recursive: true });
    for (const d of reapStale(baseDir)) log(`reaped stale cluster ${d}`);
    const name = opts.name ?? `c${process.pid}-${randomBytes(3).toString('hex')}`;
    const dir = join(baseDir, name);
    if (readState(dir)) throw new Error(`cluster ${dir} already exists (hosts-cli down?)`);
    mkdirSync(dir, { recursive: true });
    const cgName = `ferry-${name}`;
    const state: ClusterState = {
      version: 1, name, dir, baseDir, persistent: !!opts.persistent,
      owner: { pid: process.pid, start: startTimeOf(process.pid) ?? 0 },
      hosts: [], fabricPids: [], cgroupDirs: clusterCgroupDirs(cgName), netnsInodes: [],
    };
    for (let i = 1; i <= n; i++) {
      const hname = `h${i}`;
      state.hosts.push({
        name: hname, index: i, ip: hostIp(i), dir: join(dir, hname), nsFile: join(dir, 'ns', hname),
        cgroupDirs: clusterCgroupDirs(cgName).map((d) => join(d, hname)), hideDir: baseDir,
      });
    }
    writeState(state);
    const cluster = new Cluster(state);
    if (!state.persistent) {
      installExitHandlers();
      live.add(cluster);
    }
    try {
      await cluster.build(opts, log);
      return cluster;
    } catch (e) {
      await cluster.destroy({ graceful: false }).catch(() => undefined);
      throw e;
    }
  }

  /** Re-attaches to a cluster created by another process (hosts-cli). */
  static attach(dir: string): Cluster {
    const s = readState(dir);
    if (!s) throw new Error(`no cluster at ${dir}`);
    return new Cluster(s);
  }

  private async build(opts: ClusterOptions, log: (m: string) => void): Promise<void> {
    const t0 = Date.now();
    this.raiseInotify(this.hosts.length);
    await prepareNsDir(this.fabric.nsDir);
    await this.fabric.create();
    this.state.netnsInodes.push(netnsInode(this.fabric.nsFile));
    writeState(this.state);
    await Promise.all(this.hosts.map(async (h) => {
      await createNetns(h.spec.nsFile);
      this.state.netnsInodes.push(netnsInode(h.spec.nsFile));
      await this.fabric.cable(h.index, h.spec.nsFile);
      createHostCgroups(`ferry-${this.state.name}`, h.name);
      h.prepare(opts.extraMasks);
    }));
    writeState(this.state);
    log(`fabric and ${this.hosts.length} host(s) prepared in ${Date.now() - t0} ms`);
    await Promise.all(this.hosts.map(async (h) => {
      const st = await h.boot({ timeoutMs: opts.bootTimeoutMs ?? 60_000 });
      this.bootMs.set(h.name, h.msSinceBoot);
      this.rememberHostPids(h, st);
      log(`${h.name} ${h.ip} booted in ${h.msSinceBoot} ms (${st?.state})`);
    }));
  }

  /** Records a host's PIDs (after boot or reboot) so {@link leftovers} can check them. */
  rememberHostPids(h: Host, st?: BootState): void {
    for (const pid of [readLauncherPid(h.dir), st?.pid1 ?? h.pid1()]) {
      if (pid) this.seenHostPids.push({ pid, start: startTimeOf(pid) ?? 0 });
    }
  }

  /**
   * ~5 inotify instances per host (systemd, journald, logind, dbus...); the default limit of
   * 128 per user runs out above ~23 hosts. Raised only when needed, restored at teardown.
   */
  private raiseInotify(hosts: number): void {
    const current = Number(readFileSync(INOTIFY_INSTANCES, 'utf8').trim());
    const needed = 64 + 8 * hosts;
    if (current >= needed) return;
    this.state.inotify = { original: current, raised: needed };
    writeState(this.state); // first, so a crash right after still restores it
    writeFileSync(INOTIFY_INSTANCES, `${needed}\n`);
  }

  /** Host by name (`h2`) or number (2). */
  host(which: string | number): Host {
    const h = this.hosts.find((x) => x.name === which || x.index === which);
    if (!h) throw new Error(`no host ${which} in cluster ${this.state.name}`);
    return h;
  }

  /** Runs a command to completion inside the fabric namespace (e.g. `iptables -S`). */
  fabricExec(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    return this.fabric.exec(argv, opts);
  }

  /**
   * Starts a long-running process (e.g. the controller, listening on 10.77.0.1) inside the
   * fabric namespace. Its PID is recorded in the state file, so it is killed at teardown even
   * if the caller forgets.
   */
  runInFabric(argv: readonly string[], opts: FabricSpawnOptions = {}): FabricProcess {
    const child = this.fabric.spawn(argv, opts);
    const pid = child.pid;
    if (!pid) throw new Error(`cannot start ${argv[0]} in the fabric`);
    this.state.fabricPids.push({ pid, start: startTimeOf(pid) ?? 0 });
    writeState(this.state);
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { out += d; });
    let exited = false;
    const exit = new Promise<void>((r) => child.once('exit', () => { exited = true; r(); }));
    return {
      pid,
      child,
      output: () => out,
      waitForOutput: (re, timeoutMs = 10_000) => waitFor(`${argv[0]} output ${re}`, () => {
        const m = re.exec(out);
        if (m) return m[0];
        if (exited) throw new Error(`${argv[0]} exited; output:\n${out}`);
        return undefined;
      }, timeoutMs, 20),
      stop: async (timeoutMs = 5000) => {
        if (exited || !pidAlive(pid)) return;
        signal(pid, 'SIGTERM');
        const t = setTimeout(() => signal(pid, 'SIGKILL'), timeoutMs);
        await exit;
        clearTimeout(t);
      },
    };
  }

  /**
   * Stops every host (gracefully unless `graceful: false`, hard kill after `timeoutMs`), kills
   * fabric processes, then tears everything down synchronously. Idempotent; never leaves the
   * cluster half-destroyed because one step failed — problems are collected and thrown at the end.
   */
  async destroy(opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.destroyed) return;
    const graceful = opts.graceful ?? true;
    await Promise.all(this.hosts.map((h) =>
      (graceful ? h.stop(opts.timeoutMs ?? 10_000) : h.hardKill()).catch(() => h.killSync())));
    for (const r of this.state.fabricPids) {
      if (startTimeOf(r.pid) === r.start) signal(r.pid, 'SIGTERM');
    }
    await waitFor('fabric processes to exit', () => this.state.fabricPids.every((r) => !pidAlive(r.pid) || startTimeOf(r.pid) !== r.start), 3000)
      .catch(() => undefined); // teardownSync SIGKILLs whatever is left
    this.destroySync();
  }

  /** Synchronous hard teardown (exit handler). Throws if something could not be removed. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    const problems = teardownSync(this.state);
    if (problems.length) throw new Error(`cluster ${this.state.name} teardown: ${problems.join('; ')}`);
  }

  /**
   * After {@link destroy}: everything still left on the machine (mounts in any namespace,
   * network namespaces in use, processes, cgroups, the directory, the sysctl). Empty = clean.
   */
  leftovers(): string[] {
    return findLeftovers(this.state, this.seenHostPids);
  }
}
