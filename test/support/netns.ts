/**
 * Low-level pieces of the simulated-sites harness (sites.ts): running `ip`,
 * `tc` and `iptables` with errors that say which command failed, whether
 * this machine can make network namespaces at all, and removing what an
 * earlier run left behind when its process died before tearing down.
 *
 * Every name this harness creates starts with NETNS_PREFIX and carries the
 * creating process's pid, so a sweep only ever touches namespaces of dead
 * runs of this harness.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { runSync } from '../e2e/harness/proc.js';

/** Namespaces are named `ferry-sites-<pid>-<id>-<role>`. */
export const NETNS_PREFIX = 'ferry-sites-';

/** Runs a command synchronously; throws with the command line and its stderr when it fails. */
export function sh(argv: string[], opts: { timeoutMs?: number } = {}): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 10_000 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

/** Like sh() but never throws (teardown paths: the thing may already be gone); the e2e harness's sync runner. */
export function shQuiet(argv: string[]): boolean {
  return runSync(argv).exitCode === 0;
}

const TOOLS = ['/usr/sbin/ip', '/usr/sbin/tc', '/usr/sbin/iptables'];
let availability: string | undefined | null = null;

/**
 * Why simulated sites cannot run here (not root, a tool missing, the kernel
 * refusing a namespace or a veth), or undefined when they can. Tried once
 * per process with a namespace of its own that is removed again.
 */
export function netnsUnavailable(): string | undefined {
  if (availability !== null) return availability;
  availability = (() => {
    if (process.platform !== 'linux') return `simulated sites need Linux network namespaces (this is ${process.platform})`;
    if (process.getuid?.() !== 0) return 'simulated sites need root (ip netns, tc, iptables); run the tests as root';
    const missing = TOOLS.filter((t) => !existsSync(t));
    if (missing.length) return `simulated sites need ${missing.join(', ')} (Debian: iproute2, iptables)`;
    const probe = `${NETNS_PREFIX}${process.pid}-probe`;
    try {
      sh(['ip', 'netns', 'add', probe]);
      sh(['ip', '-n', probe, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
      sh(['ip', '-n', probe, 'link', 'set', 'p0', 'up']);
      sh(['tc', '-n', probe, 'qdisc', 'add', 'dev', 'p0', 'root', 'handle', '1:', 'htb']);
      return undefined;
    } catch (e) {
      return `this machine cannot make the namespaces simulated sites need: ${(e as Error).message}`;
    } finally {
      shQuiet(['ip', 'netns', 'del', probe]);
    }
  })();
  return availability;
}

let netem: boolean | undefined;

/**
 * Whether the kernel has the netem qdisc (delay). Some kernels (minimal VM
 * kernels without modules) have htb and tbf but no netem; the harness then
 * shapes rate and loss only and refuses a delay.
 */
export function netemAvailable(): boolean {
  if (netem !== undefined) return netem;
  const probe = `${NETNS_PREFIX}${process.pid}-netem`;
  try {
    sh(['ip', 'netns', 'add', probe]);
    sh(['ip', '-n', probe, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
    netem = shQuiet(['tc', '-n', probe, 'qdisc', 'add', 'dev', 'p0', 'root', 'netem', 'delay', '1ms']);
  } catch {
    netem = false;
  } finally {
    shQuiet(['ip', 'netns', 'del', probe]);
  }
  return netem;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Names of the namespaces in `ip netns list`. */
export function listNetns(): string[] {
  return sh(['ip', 'netns', 'list']).split('\n').map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean);
}

/**
 * Deletes the namespaces (and the root-side link) of harness runs whose
 * process is gone: a run killed with SIGKILL cannot tear down itself.
 * Processes still inside such a namespace are not signalled (they belong to
 * that run); the namespace goes away when they exit.
 */
export function sweepStale(): string[] {
  const removed: string[] = [];
  for (const ns of listNetns()) {
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-([a-z0-9]+)-`).exec(ns);
    if (!m || alive(Number(m[1]))) continue;
    shQuiet(['ip', 'link', 'del', `f${m[2]}h`]);
    if (shQuiet(['ip', 'netns', 'del', ns])) removed.push(ns);
  }
  return removed;
}

/** The pids of processes inside a namespace (`ip netns pids`). */
export function netnsPids(ns: string): number[] {
  try {
    return sh(['ip', 'netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
