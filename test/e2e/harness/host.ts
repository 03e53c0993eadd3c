/**
 * One simulated host: its own network namespace and address, an overlay root over the
 * machine's `/`, and systemd as PID 1 under `systemd-nspawn`.
 *
 * Layout of a host directory H:
 *   upper/ work/   overlay layers; upper/ is the host's whole persistent state (deleting H resets it)
 *   root/          overlay mount point (mounted only inside the launcher's private mount namespace)
 *   containerd/    bound onto /var/lib/containerd (containerd's overlayfs snapshotter cannot
 *                  stack on the overlay root, so its state lives on the real file system)
 *   launch.sh      generated launcher; console.log: systemd's console; launcher.pid; exit-status
 *
 * The overlay and the private /run live only in the launcher's mount namespace, so they vanish
 * by themselves when the host stops; nothing is mounted in the machine's namespace per host.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupTreePids, memoryBytes } from './cgroups.js';
import type { Fabric } from './fabric.js';
import { childrenOf, nsLink, pidAlive, releaseStoppedNsenters, run, signal, sleep, sleepSync, startTimeOf, waitFor, type ExecResult } from './proc.js';
import { execInHost, execInteractiveInHost, findPid1, nudgeShutdown, type HostExecOptions } from './host-exec.js';
import { HOST_PATH, launcherScript, offlineScript, readLauncherPid, seedHost, writeFileScript } from './host-files.js';

/** Serializable description of a host (kept in the cluster's state file for re-attaching). */
export interface HostSpec {
  /** `h1`, `h2`, ... — also the hostname and nspawn machine name. */
  name: string;
  /** 1-based host number; the address is 10.77.0.(10+index). */
  index: number;
  ip: string;
  /** Host directory H (see module comment). */
  dir: string;
  /** Network namespace file. */
  nsFile: string;
  /** The host's cgroup directories (one per hierarchy). */
  cgroupDirs: string[];
  /** Directory hidden inside the host by an empty tmpfs (the harness's own state). */
  hideDir: string;
}

/** What {@link Host.waitBooted} found. */
export interface BootState {
  /** `running` or `degraded` (some unit failed; `failedUnits` says which). */
  state: string;
  failedUnits: string[];
  /** Host PID (in the machine's PID namespace) of the host's systemd. */
  pid1: number;
}

/** systemd's "poweroff" signal is SIGRTMIN+4; glibc's SIGRTMIN is 34, and Node has no name for it. */
const SIGRTMIN_PLUS_4 = 38;

export { NSPAWN_REBOOT_EXIT } from './host-files.js';
export type { HostExecOptions } from './host-exec.js';

/** One simulated host. Create hosts through {@link Cluster}; this class does not own the fabric. */
export class Host {
  readonly name: string;
  readonly index: number;
  readonly ip: string;
  readonly dir: string;
  private pid1Cache?: { pid: number; start: number };
  private bootStartedAt = 0;
  private offlineQueue: Promise<unknown> = Promise.resolve();

  constructor(readonly spec: HostSpec, private readonly fabric: Fabric) {
    this.name = spec.name;
    this.index = spec.index;
    this.ip = spec.ip;
    this.dir = spec.dir;
  }

  get upperDir(): string { return join(this.dir, 'upper'); }
  get workDir(): string { return join(this.dir, 'work'); }
  get rootDir(): string { return join(this.dir, 'root'); }

  /** Creates the host's directories and seeds its upper layer before first boot (see {@link seedHost}). */
  prepare(extraMasks: readonly string[] = []): void {
    seedHost(this.spec, extraMasks);
  }

  /** True while the launcher (and so the host) is alive. */
  get running(): boolean {
    return pidAlive(readLauncherPid(this.dir));
  }

  /**
   * Boots the host: the launcher moves into the host's cgroups, enters a private mount
   * namespace, mounts /run (tmpfs, or nspawn writes to the machine's /run and refuses) and the
   * overlay, hides the harness directory, and runs systemd-nspawn — again whenever it exits 133
   * (reboot). With `wait` (default) it resolves when systemd reports the boot finished.
   */
  async boot(opts: { wait?: boolean; timeoutMs?: number } = {}): Promise<BootState | undefined> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const script = launcherScript(this.spec);
    const scriptPath = join(this.dir, 'launch.sh');
    writeFileSync(scriptPath, script, { mode: 0o755 });
    const log = openSync(join(this.dir, 'console.log'), 'a');
    this.bootStartedAt = Date.now();
    this.pid1Cache = undefined;
    // Detached: Ctrl-C on the test run must reach our cleanup first, not kill hosts half-way;
    // and `hosts-cli up` exits while its hosts keep running.
    const child = spawn('/bin/sh', [scriptPath], { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    if (!child.pid) throw new Error(`${this.name}: cannot start launcher`);
    writeFileSync(join(this.dir, 'launcher.pid'), `${child.pid} ${startTimeOf(child.pid) ?? 0}\n`);
    if (opts.wait === false) return undefined;
    return this.waitBooted(opts.timeoutMs);
  }

  /** Milliseconds since the last {@link boot} call (meaningful right after {@link waitBooted}). */
  get msSinceBoot(): number {
    return Date.now() - this.bootStartedAt;
  }

  /**
   * The host's PID 1 (systemd) as a PID of the machine: the child of the launcher's
   * systemd-nspawn whose PID inside its own namespace is 1. Undefined while not (yet) running.
   */
  pid1(): number | undefined {
    const c = this.pid1Cache;
    if (c && startTimeOf(c.pid) === c.start && pidAlive(c.pid)) return c.pid;
    this.pid1Cache = undefined;
    const pid = findPid1(readLauncherPid(this.dir));
    if (pid) this.pid1Cache = { pid, start: startTimeOf(pid) ?? 0 };
    return pid;
  }

  /**
   * Waits until systemd inside has finished booting (`is-system-running --wait` says
   * running or degraded). Fails early, with the console's tail, if the launcher dies.
   */
  async waitBooted(timeoutMs = 60_000): Promise<BootState> {
    const deadline = Date.now() + timeoutMs;
    const pid1 = await waitFor(`${this.name} to start systemd`, () => {
      if (!this.running) throw new Error(`launcher exited; console:\n${this.consoleTail()}`);
      return this.pid1();
    }, timeoutMs);
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: boot did not finish in ${timeoutMs} ms; console:\n${this.consoleTail()}`);
      // Before D-Bus and the private socket exist this fails fast; --wait covers "starting".
      const r = await this.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.min(left, 30_000) });
      const state = r.stdout.trim();
      if (state === 'running' || state === 'degraded') {
        const failed = state === 'degraded'
          ? (await this.exec(['systemctl', 'list-units', '--failed', '--plain', '--no-legend'])).stdout
              .split('\n').map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean)
          : [];
        return { state, failedUnits: failed, pid1 };
      }
      if (!this.running) throw new Error(`${this.name}: launcher exited during boot; console:\n${this.consoleTail()}`);
      await sleep(100);
    }
  }

  /**
   * Runs `argv` inside the host (all of its namespaces) with a clean root environment.
   * Never throws for a non-zero exit; see {@link execInHost} for how timeouts and shutdown
   * interact with it.
   */
  async exec(argv: readonly string[], opts: HostExecOptions = {}): Promise<ExecResult> {
    const pid = this.pid1();
    if (!pid) throw new Error(`${this.name} is not running`);
    return execInHost(pid, argv, opts);
  }

  /** {@link exec} that throws unless the command exits 0; returns stdout. */
  async execOk(argv: readonly string[], opts: HostExecOptions = {}): Promise<string> {
    const r = await this.exec(argv, opts);
    if (r.exitCode !== 0) {
      throw new Error(`${this.name}: ${argv.join(' ')} exited ${r.exitCode}: ${(r.stderr || r.stdout).trim()}`);
    }
    return r.stdout;
  }

  /** Runs `argv` in the host attached to this terminal (for `hosts-cli exec`); resolves to the exit code. */
  execInteractive(argv: readonly string[]): Promise<number> {
    const pid = this.pid1();
    if (!pid) return Promise.reject(new Error(`${this.name} is not running`));
    return execInteractiveInHost(pid, argv);
  }

  /** `systemctl ARGS...` inside the host. */
  systemctl(...args: string[]): Promise<ExecResult> {
    return this.exec(['systemctl', ...args]);
  }

  /** `systemctl is-active UNIT` → e.g. "active", "inactive", "failed", "activating". */
  async isActive(unit: string): Promise<string> {
    return (await this.systemctl('is-active', unit)).stdout.trim();
  }

  /** Waits until `unit` is active; throws with its status when it fails or times out. */
  async waitActive(unit: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${unit} active on ${this.name}`, async () => {
      const s = await this.isActive(unit);
      if (s === 'failed') throw new Error((await this.systemctl('status', '--no-pager', unit)).stdout);
      return s === 'active';
    }, timeoutMs, 100);
  }

  /**
   * Writes /etc/systemd/system/NAME, reloads systemd, and optionally enables/starts it —
   * the same steps the agent runs for a plan's unit file.
   */
  async installUnit(name: string, text: string, opts: { enable?: boolean; start?: boolean } = {}): Promise<void> {
    await this.writeFile(`/etc/systemd/system/${name}`, text, 0o644);
    await this.execOk(['systemctl', 'daemon-reload']);
    if (opts.enable) await this.execOk(['systemctl', 'enable', name]);
    if (opts.start) await this.execOk(['systemctl', 'start', name]);
  }

  /** Writes a file inside the host (atomically: temp file + rename), creating parent directories. */
  writeFile(hostPath: string, content: string | Buffer, mode = 0o644): Promise<void> {
    return this.putFile(hostPath, mode, { input: content });
  }

  /**
   * Copies a local file into the host with `mode`. Works while the host runs (through its
   * namespaces) and while it is stopped (through a short-lived private overlay mount and
   * chroot, so symlinks such as /bin → usr/bin resolve as inside the host, never by writing
   * blindly into upper/).
   */
  copyIn(localPath: string, hostPath: string, mode = 0o644): Promise<void> {
    return this.putFile(hostPath, mode, { inputFile: localPath });
  }

  /** Reads a text file inside the host (running or stopped). */
  async readFile(hostPath: string): Promise<string> {
    const argv = ['cat', '--', hostPath];
    const r = this.pid1() ? await this.exec(argv) : await this.offline(['/bin/sh', '-c', 'exec cat -- "$1"', 'sh', hostPath]);
    if (r.exitCode !== 0) throw new Error(`${this.name}: cannot read ${hostPath}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /**
   * Unmasks containerd (masked at seed time so idle hosts stay at ~12 MiB), starts it as a
   * unit and waits until `ctr version` answers.
   */
  async enableContainerd(timeoutMs = 30_000): Promise<void> {
    await this.execOk(['rm', '-f', '/etc/systemd/system/containerd.service']);
    await this.execOk(['systemctl', 'daemon-reload']);
    await this.execOk(['systemctl', 'enable', '--now', 'containerd.service']);
    await waitFor(`containerd on ${this.name}`, async () => (await this.exec(['ctr', 'version'], { timeoutMs: 5000 })).exitCode === 0, timeoutMs, 100);
  }

  /** Pulls the host's cable in the fabric (see {@link Fabric.cutCable}). */
  cutCable(opts: { reset?: boolean } = {}): Promise<void> {
    return this.fabric.cutCable(this.index, opts);
  }

  /** Plugs the host's cable back in. */
  restoreCable(): Promise<void> {
    return this.fabric.restoreCable(this.index);
  }

  /** Memory charged to the host's cgroup right now, in bytes (undefined if not measurable). */
  memoryBytes(): number | undefined {
    return memoryBytes(this.spec.cgroupDirs);
  }

  /** Power cut: SIGKILL to the host's systemd. No unit gets to stop; upper/ keeps what was written. */
  async hardKill(timeoutMs = 10_000): Promise<void> {
    signal(this.pid1(), 'SIGKILL');
    await this.waitDown(timeoutMs).catch(() => this.killSync());
  }

  /**
   * Reboot from inside (`systemctl reboot`): nspawn exits 133 and the launcher boots again
   * with the same overlay. Resolves when the new systemd has finished booting.
   */
  async reboot(timeoutMs = 60_000): Promise<BootState> {
    const old = this.pid1();
    if (!old) throw new Error(`${this.name} is not running`);
    const oldStart = startTimeOf(old);
    this.bootStartedAt = Date.now();
    // systemctl may be killed as the host goes down; its exit code means nothing here.
    await this.exec(['systemctl', 'reboot'], { timeoutMs: 10_000 }).catch(() => undefined);
    const pidNs = nsLink(old, 'pid');
    await waitFor(`${this.name} to go down for reboot`, () => {
      nudgeShutdown(old, pidNs);
      return !pidAlive(old) || startTimeOf(old) !== oldStart;
    }, timeoutMs);
    return this.waitBooted(timeoutMs);
  }

  /** Graceful poweroff (SIGRTMIN+4 to systemd); hard kill when it takes longer than `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (!this.running) return;
    const pid = this.pid1();
    if (pid) signal(pid, SIGRTMIN_PLUS_4);
    try {
      await this.waitDown(timeoutMs);
    } catch {
      await this.hardKill();
    }
  }

  /** Synchronous kill of everything this host runs (exit handler and last-resort cleanup). */
  killSync(): void {
    const launcher = readLauncherPid(this.dir);
    const pid1 = this.pid1();
    const pidNs = pid1 ? nsLink(pid1, 'pid') : undefined;
    const pids = [pid1, ...(launcher ? childrenOf(launcher) : []), launcher];
    for (const p of pids) signal(p, 'SIGKILL');
    for (const d of this.spec.cgroupDirs) for (const p of cgroupTreePids(d)) signal(p, 'SIGKILL');
    for (let i = 0; i < 100 && pids.some((p) => pidAlive(p)); i++) {
      if (pidNs) releaseStoppedNsenters(pidNs); // else a dying PID 1 may wait for them forever
      sleepSync(50);
    }
  }

  /** Exit status of the host's last systemd-nspawn run (0 = clean poweroff), if it has stopped. */
  get exitStatus(): number | undefined {
    try {
      return Number(readFileSync(join(this.dir, 'exit-status'), 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  /** Last lines of the host's console (systemd's boot messages), for error messages. */
  consoleTail(lines = 30): string {
    try {
      // Strip the colour escapes nspawn passes through from systemd's status output.
      const txt = readFileSync(join(this.dir, 'console.log'), 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
      return txt.split('\n').slice(-lines).join('\n');
    } catch {
      return '(no console log)';
    }
  }

  private async waitDown(timeoutMs: number): Promise<void> {
    const pid1 = this.pid1Cache?.pid;
    const pidNs = pid1 ? nsLink(pid1, 'pid') : undefined;
    await waitFor(`${this.name} to stop`, () => {
      if (pid1) nudgeShutdown(pid1, pidNs);
      return !this.running;
    }, timeoutMs, 50);
    this.pid1Cache = undefined;
  }

  private async putFile(hostPath: string, mode: number, src: { input?: string | Buffer; inputFile?: string }): Promise<void> {
    if (!hostPath.startsWith('/')) throw new Error(`host path must be absolute: ${hostPath}`);
    const argv = ['/bin/sh', '-c', writeFileScript, 'sh', hostPath, mode.toString(8)];
    const r = this.pid1() ? await this.exec(argv, src) : await this.offline(argv, src);
    if (r.exitCode !== 0) throw new Error(`${this.name}: cannot write ${hostPath}: ${(r.stderr || r.stdout).trim()}`);
  }

  /** Runs `argv` chrooted into a temporary private mount of the (stopped) host's overlay. */
  private offline(argv: readonly string[], src: { input?: string | Buffer; inputFile?: string } = {}): Promise<ExecResult> {
    // One at a time: the kernel refuses two overlay mounts sharing an upper dir.
    const next = this.offlineQueue.then(() => {
      if (this.running) throw new Error(`${this.name} started during an offline file operation`);
      return run(['unshare', '--mount', '--propagation', 'private', '/bin/sh', '-c', offlineScript,
        'sh', this.upperDir, this.workDir, this.rootDir, ...argv], { ...src, env: { PATH: HOST_PATH } });
    });
    this.offlineQueue = next.catch(() => undefined);
    return next;
  }
}
