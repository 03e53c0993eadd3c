/**
 * The host side of the agent-upgrade benchmark (upgrades.ts), inside a
 * fleet process (fleet.ts): an UpgradeHost for a simulated agent, so the
 * agent's real upgrade code (ReleaseUpgrader → BundleStager → startUpgrade)
 * runs against a host that has no systemd of its own.
 *
 * What is real: the release message, manifest verification, staging (chunks
 * found in the running binary copied, changed chunks assembled from the
 * running binary's sub-chunks plus ranges fetched with Chunks.Sketch and
 * FetchRanges, anything else fetched over Chunks.Fetch, all verified),
 * `version --json` of the staged binary, the disk check, the
 * versioned install with its marker, the guard drop-in file, the atomic
 * switch of the path "systemd runs" (a symlink in the state directory), and
 * then the new version: when the agent asks systemd-run for its watcher, the
 * simulated agent's session loop is stopped and the *switched path* is
 * started as a real process (`<link> run --state DIR`: the new single
 * binary), which reconnects over mTLS, runs its self-check, commits and
 * reports. What is not: systemd itself (systemctl answers the ExecStart
 * query and succeeds otherwise; the new process gets `systemctl`,
 * `systemd-run` and `journalctl` that fail, so it never touches this
 * machine's systemd), and the watcher (`upgrade-watch`), whose decisions the
 * e2e tests on simulated hosts cover.
 *
 * At most `maxLive` new-version processes run at once (the machine has 2
 * cores and a single binary is ~60 MB resident); a host waits for a slot
 * between its switch and its restart, which the times include.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, linkSync, mkdirSync, openSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BundleProgress } from '../../common/src/gen/ferry/v1/session.js';
import { FERRY_VERSION } from '../../common/src/version.js';
import { runProcess } from '../../common/src/proc/run-process.js';
import type { UpgradeHost } from '../../agent/src/upgrade/upgrade-host.js';
import { loadUpgradeState, UpgradePaths } from '../../agent/src/upgrade/upgrade-state.js';

/** What the parent passes (sessionsStart's `upgrade`). */
export interface UpgradeSimOptions {
  /** The binary every simulated host "runs" (the old release, this tree's version). */
  runningBinary: string;
  /** Its sha256 (the install marker of the running version). */
  runningSha256: string;
  /** New-version processes allowed at once. */
  maxLive: number;
  /** A directory with failing systemctl / systemd-run / journalctl for the new processes. */
  shimDir: string;
  logDir: string;
}

/** Per host, what the benchmark reads back. */
export interface UpgradeSimTimes {
  name: string;
  /** The last BundleProgress of the release stage. */
  fetched?: number;
  total?: number;
  staged?: number;
  /** systemd-run asked for (the switch is done). */
  switched?: number;
  /** The new process spawned (a slot was free). */
  started?: number;
  /** When the new version committed (the time it wrote into upgrade/state.json). */
  committed?: number;
  error?: string;
}

class Slots {
  private free: number;
  private readonly waiting: Array<() => void> = [];
  constructor(n: number) { this.free = n; }
  async take(): Promise<void> {
    if (this.free > 0) { this.free--; return; }
    await new Promise<void>((res) => this.waiting.push(res));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next(); else this.free++;
  }
}

const wall = () => performance.timeOrigin + performance.now();

/** The simulated hosts of one fleet process; see the module comment. */
export class UpgradeSim {
  readonly times = new Map<string, UpgradeSimTimes>();
  private readonly slots: Slots;
  private readonly live = new Map<string, { proc: ChildProcess; release: () => void }>();

  constructor(private readonly o: UpgradeSimOptions) {
    this.slots = new Slots(o.maxLive);
  }

  /** The path systemd would run for host `name`: a symlink into versions/, as after a first upgrade. */
  prepare(name: string, stateDir: string): string {
    const paths = new UpgradePaths(stateDir);
    mkdirSync(paths.versionDir(FERRY_VERSION), { recursive: true, mode: 0o700 });
    if (!existsSync(paths.binary(FERRY_VERSION))) {
      try { linkSync(this.o.runningBinary, paths.binary(FERRY_VERSION)); } catch { copyFileSync(this.o.runningBinary, paths.binary(FERRY_VERSION)); }
    }
    writeFileSync(paths.marker(FERRY_VERSION), `${this.o.runningSha256}\n`, { mode: 0o600 });
    const link = join(stateDir, 'sbin', 'ferry-agent');
    mkdirSync(join(stateDir, 'sbin'), { recursive: true });
    if (!existsSync(link)) symlinkSync(paths.binary(FERRY_VERSION), link);
    this.times.set(name, { name });
    return link;
  }

  /** Records a release stage's progress (the final one carries bytes fetched over the network). */
  progress(name: string, p: BundleProgress): void {
    const t = this.times.get(name)!;
    t.fetched = Number(p.bytesFetched);
    t.total = Number(p.bytesTotal);
    if (p.error) t.error = p.error;
  }

  staged(name: string): void {
    this.times.get(name)!.staged = wall();
  }

  /**
   * The UpgradeHost of one simulated host. `handover` stops its session loop
   * (the old agent going away when systemd restarts the unit).
   */
  host(name: string, stateDir: string, link: string, handover: () => Promise<void>): UpgradeHost {
    const unit = `ferry-bench-${name}.service`;
    return {
      unitDir: join(stateDir, 'systemd'),
      ownUnit: () => unit,
      launchPath: () => link,
      isSingleBinary: () => true,
      systemctl: async (args) => (args[0] === 'show' && args.includes('--property=ExecStart')
        ? { exitCode: 0, output: `{ path=${link} ; argv[]=${link} run --state ${stateDir} ; }` }
        : { exitCode: 0, output: '' }),
      systemdRun: async () => {
        this.times.get(name)!.switched = wall();
        void this.restart(name, stateDir, link, handover);
        return { exitCode: 0, output: '' };
      },
      unitState: async () => ({ activeState: 'active', subState: 'running', nRestarts: 0, mainPid: 0, execMainStatus: '' }),
      journalTail: async () => [],
      describeBinary: async (binary) => {
        const r = await runProcess({ argv: [binary, 'version', '--json'], timeoutMs: 60_000, plainLocale: true });
        return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
      },
    };
  }

  /** What systemd would do on `systemctl restart`: stop the old agent, start what the path now points at. */
  private async restart(name: string, stateDir: string, link: string, handover: () => Promise<void>): Promise<void> {
    const t = this.times.get(name)!;
    try {
      await this.slots.take();
      await handover();
      const log = openSync(join(this.o.logDir, `new-${name}.log`), 'w');
      const proc = spawn(link, ['run', '--state', stateDir, '--log-level', 'info'], {
        stdio: ['ignore', log, log], env: { ...process.env, PATH: `${this.o.shimDir}:${process.env['PATH'] ?? '/usr/bin:/bin'}` },
      });
      closeSync(log);
      t.started = wall();
      let released = false;
      const release = () => { if (!released) { released = true; this.live.delete(name); this.slots.give(); } };
      this.live.set(name, { proc, release });
      // The commit's time is the one the new version wrote with it (same clock: this machine).
      const commitTime = () => {
        const d = loadUpgradeState(stateDir);
        if (!d.pending && d.last?.outcome === 'committed') t.committed = d.last.atMs;
        return t.committed;
      };
      proc.once('exit', (code) => {
        if (commitTime() === undefined) t.error ??= `the new version exited (${code}) before it committed; see new-${name}.log`;
        release();
      });
      while (commitTime() === undefined && !proc.killed && proc.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    } catch (err) {
      t.error = (err as Error).message;
    }
  }

  /** Stops the new-version processes of `names` (the controller has recorded their commits). */
  async stop(names: readonly string[]): Promise<void> {
    await Promise.all(names.map(async (n) => {
      const l = this.live.get(n);
      if (!l) return;
      const exited = new Promise<void>((res) => l.proc.once('exit', () => res()));
      l.proc.kill('SIGTERM');
      const timer = setTimeout(() => l.proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      l.release();
    }));
  }

  async stopAll(): Promise<void> {
    await this.stop([...this.live.keys()]);
  }
}

/** A directory whose systemctl, systemd-run and journalctl fail (the new processes must not reach this machine's systemd). */
export function writeShims(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const name of ['systemctl', 'systemd-run', 'journalctl']) {
    const p = join(dir, name);
    writeFileSync(p, `#!/bin/sh\necho "bench: no systemd for simulated hosts ($0 $*)" >&2\nexit 1\n`);
    chmodSync(p, 0o755);
  }
}
