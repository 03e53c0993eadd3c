/**
 * What a self-upgrade needs from the host, behind one interface: systemd
 * (restart, transient units, unit state, journal) and the running binary.
 * The CLI and the agent use systemUpgradeHost; unit tests pass a fake.
 */
import { readFileSync } from 'node:fs';
import { isSea } from 'node:sea';
import { runProcess } from '../../../common/src/proc/run-process.js';
import { systemctl } from '../../../common/src/service/systemd-service.js';

/** The part of `systemctl show` the watcher reads. */
export interface UnitState {
  activeState: string;
  subState: string;
  /** How often systemd restarted the unit since it was (re)started by hand. */
  nRestarts: number;
  mainPid: number;
  /** Exit status of the main process's last run ("" when it has not exited). */
  execMainStatus: string;
}

export interface UpgradeHost {
  /** Where systemd drop-ins for the agent's unit go (/etc/systemd/system). */
  readonly unitDir: string;
  /** The systemd service this process runs in (from /proc/self/cgroup), or undefined outside one. */
  ownUnit(): string | undefined;
  /** The program path systemd started this process with (argv[0] of /proc/self/cmdline). */
  launchPath(): string;
  /** Whether this process is the single executable (a node running a script cannot replace itself). */
  isSingleBinary(): boolean;
  systemctl(args: string[]): Promise<{ exitCode: number; output: string }>;
  /** Starts `argv` as a transient service `unit`, outside this process's cgroup (noBlock: do not wait for it to start). */
  systemdRun(unit: string, argv: string[], opts?: { noBlock?: boolean }): Promise<{ exitCode: number; output: string }>;
  unitState(unit: string): Promise<UnitState>;
  /** The unit's log lines since `sinceMs` (at most `lines`, the last ones). */
  journalTail(unit: string, sinceMs: number, lines: number): Promise<string[]>;
  /** Runs `binary version --json`: how the new binary describes itself. */
  describeBinary(binary: string): Promise<{ exitCode: number; stdout: string; stderr: string }>;
}

async function run(argv: string[], timeoutMs = 60_000): Promise<{ exitCode: number; output: string; stdout: string; stderr: string }> {
  const r = await runProcess({ argv, timeoutMs, plainLocale: true });
  const output = `${r.stdout}${r.stderr}${r.startError ? `${r.startError}\n` : ''}`.trim();
  return { exitCode: r.exitCode ?? -1, output, stdout: r.stdout, stderr: r.stderr };
}

/** The unit name from /proc/self/cgroup (the last path element ending in .service). */
export function unitFromCgroup(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    const last = path.split('/').filter(Boolean).pop();
    if (last?.endsWith('.service')) return last;
  }
  return undefined;
}

/** The real host (systemctl: the one runner in common/src/service/systemd-service.ts). */
export const systemUpgradeHost: UpgradeHost = {
  unitDir: '/etc/systemd/system',
  ownUnit() {
    try {
      return unitFromCgroup(readFileSync('/proc/self/cgroup', 'utf8'));
    } catch {
      return undefined;
    }
  },
  launchPath() {
    try {
      return readFileSync('/proc/self/cmdline', 'utf8').split('\0')[0] || process.execPath;
    } catch {
      return process.execPath;
    }
  },
  isSingleBinary: () => isSea(),
  systemctl: (args) => systemctl(args),
  systemdRun: (unit, argv, opts) => run(['systemd-run', `--unit=${unit}`, '--collect', '--quiet', '--service-type=exec', ...(opts?.noBlock ? ['--no-block'] : []),
    '--property=KillMode=process', '--description=ferry-agent self-upgrade watcher', ...argv]),
  async unitState(unit) {
    const r = await systemctl(['show', unit, '--property=ActiveState,SubState,NRestarts,MainPID,ExecMainStatus']);
    const kv = Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return { activeState: kv['ActiveState'] ?? '', subState: kv['SubState'] ?? '', nRestarts: Number(kv['NRestarts'] ?? 0), mainPid: Number(kv['MainPID'] ?? 0), execMainStatus: kv['ExecMainStatus'] ?? '' };
  },
  async journalTail(unit, sinceMs, lines) {
    const since = `@${Math.floor(sinceMs / 1000)}`;
    const r = await run(['journalctl', '-u', unit, '--since', since, '-n', String(lines), '-o', 'cat', '--no-pager']);
    return r.stdout.split('\n').filter((l) => l.trim() !== '').slice(-lines);
  },
  async describeBinary(binary) {
    const r = await run([binary, 'version', '--json'], 60_000);
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  },
};
