/**
 * Running commands inside a simulated host from outside, and the shutdown details that come
 * with it: a host's PID namespace can only die once every process in it has been reaped,
 * including processes whose parent (nsenter, timeout) lives outside the host.
 */
import { spawn } from 'node:child_process';
import { HOST_PATH } from './host-files.js';
import { childrenOf, commOf, innermostPid, pidAlive, releaseStoppedNsenters, run, signal, type ExecResult } from './proc.js';

/** Options for {@link Host.exec}. */
export interface HostExecOptions {
  input?: string | Buffer;
  inputFile?: string;
  /** Kills the command inside the host after this long (default 60 s). */
  timeoutMs?: number;
  /** Extra environment on top of a clean root environment (PATH, HOME=/root, LANG=C.UTF-8). */
  env?: Record<string, string>;
  /** Working directory inside the host (default /). */
  cwd?: string;
}

/**
 * Runs `argv` in every namespace of the host whose PID 1 is `pid1`. The timeout is enforced
 * *inside* the host with timeout(1), because killing nsenter would orphan the command there.
 *
 * `nsenter --no-fork` execs timeout(1) directly, and only timeout's child lands in the host's
 * PID namespace. In nsenter's default fork mode its parent half waits with WUNTRACED and
 * SIGSTOPs itself when the child is stopped — which systemd does to every process when
 * powering off (kill(-1, SIGSTOP) before the final SIGTERM). Nothing then resumes nsenter,
 * it never reaps its child, and the host's PID 1 hangs in the kernel waiting for that zombie:
 * a graceful stop during any exec would hang. timeout(1) waits without WUNTRACED.
 */
export async function execInHost(pid1: number, argv: readonly string[], opts: HostExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
  const env = { PATH: HOST_PATH, HOME: '/root', LANG: 'C.UTF-8', TERM: 'dumb', ...opts.env };
  const cwd = opts.cwd ? ['env', '-C', opts.cwd] : [];
  const r = await run(['nsenter', '-t', String(pid1), '-a', '--no-fork', '--', ...cwd, 'timeout', '-k', '2', String(secs), ...argv], {
    env,
    timeoutMs: timeoutMs + 10_000,
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.inputFile !== undefined ? { inputFile: opts.inputFile } : {}),
  });
  // timeout(1) exits 124 when it had to kill the command (a command's own 124 reads the same).
  return { ...r, timedOut: r.timedOut || r.exitCode === 124 };
}

/**
 * Runs `argv` in the host attached to this terminal. Uses nsenter's fork mode (an interactive
 * shell must be inside the host's PID namespace itself); {@link nudgeShutdown} resumes the
 * nsenter if the host powers off underneath it.
 */
export function execInteractiveInHost(pid1: number, argv: readonly string[]): Promise<number> {
  const env = { PATH: HOST_PATH, HOME: '/root', LANG: 'C.UTF-8', TERM: process.env.TERM ?? 'dumb' };
  const child = spawn('nsenter', ['-t', String(pid1), '-a', '--', ...argv], { stdio: 'inherit', env });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15)));
  });
}

/**
 * The host's PID 1 (systemd) as a PID of the machine: the child of the launcher's
 * systemd-nspawn whose PID inside its own namespace is 1. Undefined while not (yet) running.
 */
export function findPid1(launcher: number | undefined): number | undefined {
  if (!launcher || !pidAlive(launcher)) return undefined;
  for (const nspawn of childrenOf(launcher)) {
    if (commOf(nspawn) !== 'systemd-nspawn') continue;
    for (const pid of childrenOf(nspawn)) if (innermostPid(pid) === 1) return pid;
  }
  return undefined;
}

/**
 * Helps a host's final shutdown along. Resumes stopped nsenter parents (see
 * {@link execInHost}), and pokes systemd-shutdown with SIGCHLD: it learns that a process it
 * killed is gone only from SIGCHLD, which it never gets for processes whose parent is outside
 * the host (nsenter, timeout), and would otherwise wait its full 10 s timeout.
 */
export function nudgeShutdown(pid1: number, pidNs: string | undefined): void {
  if (pidNs) releaseStoppedNsenters(pidNs);
  if (commOf(pid1) === 'systemd-shutdow') signal(pid1, 'SIGCHLD');
}
