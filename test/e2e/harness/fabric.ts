/**
 * The "fabric": one network namespace holding a bridge that every simulated host is cabled to.
 *
 * Nothing is added to the machine's own network namespace. Namespaces are kept alive as
 * bind-mounted files in the harness directory (`unshare --net=FILE true`) rather than named
 * namespaces under /run/netns, so a crashed run leaves everything in one directory that the
 * next run (or `hosts-cli down`) can find and remove.
 *
 * Address plan: bridge `br0` = 10.77.0.1/24 (the controller listens here); host N = 10.77.0.(10+N).
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run, runOk, runSync, type ExecResult, type RunOptions } from './proc.js';

/** Bridge address inside the fabric namespace; the one address every host can reach. */
export const FABRIC_IP = '10.77.0.1';
/** Prefix length of the host network. */
export const FABRIC_PREFIX = 24;
/**
 * Fixed bridge MAC. A Linux bridge otherwise takes the lowest MAC of its ports, so it changes
 * as hosts come and go, and hosts keep the stale ARP entry for up to ~45 s.
 */
export const FABRIC_MAC = '02:77:00:00:00:01';

/** Address of host number `n` (1-based) in the plan 10.77.0.(10+n). */
export function hostIp(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 240) throw new Error(`host number ${n} outside the /24 plan (1..240)`);
  return `10.77.0.${10 + n}`;
}

/** Fixed MAC for host `n`'s eth0, so ARP caches stay valid across host reboots. */
export function hostMac(n: number): string {
  return `02:77:00:00:01:${(10 + n).toString(16).padStart(2, '0')}`;
}

/** Creates an empty file and keeps a new network namespace alive by bind-mounting it there. */
export async function createNetns(file: string): Promise<void> {
  closeSync(openSync(file, 'a'));
  await runOk(['unshare', `--net=${file}`, 'true']);
}

/** Inode of a namespace file (identifies the namespace in /proc/PID/ns/net links). */
export function netnsInode(file: string): number {
  return statSync(file).ino;
}

/**
 * Makes `dir` a private bind mount of itself. Binding namespace files (nsfs) onto a path
 * under a *shared* mount fails with EINVAL, and even where / is private here, CI machines may
 * differ; the self-bind makes it work everywhere and is undone by {@link unmountNsDir}.
 */
export async function prepareNsDir(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await runOk(['mount', '--bind', dir, dir]);
  await runOk(['mount', '--make-private', dir]);
}

/** Lazily unmounts every namespace file and then the directory's self-bind (sync: used at exit). */
export function unmountNsDir(dir: string, files: readonly string[]): void {
  for (const f of files) runSync(['umount', '-l', f]);
  runSync(['umount', '-l', dir]);
}

/** Options for processes started inside the fabric namespace. */
export interface FabricSpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Default 'pipe' so tests can read e.g. a controller's "listening" line. */
  stdio?: StdioOptions;
}

/** The bridge namespace and its cabling operations. */
export class Fabric {
  /** Path of the fabric's namespace file. */
  readonly nsFile: string;

  constructor(readonly nsDir: string) {
    this.nsFile = join(nsDir, 'fabric');
  }

  /** Creates the namespace with loopback and the bridge (fixed MAC, 10.77.0.1/24). */
  async create(): Promise<void> {
    await createNetns(this.nsFile);
    await this.ipOk('link', 'set', 'lo', 'up');
    await this.ipOk('link', 'add', 'br0', 'address', FABRIC_MAC, 'type', 'bridge');
    await this.ipOk('addr', 'add', `${FABRIC_IP}/${FABRIC_PREFIX}`, 'dev', 'br0');
    await this.ipOk('link', 'set', 'br0', 'up');
  }

  /**
   * Cables host `n` (whose namespace file is `hostNs`) to the bridge: veth `vhN` on br0 here,
   * `eth0` with 10.77.0.(10+n)/24 and a default route via the bridge in the host. The route
   * makes "controller unreachable" look like a real host's: traffic leaves via eth0 and dies.
   */
  async cable(n: number, hostNs: string): Promise<void> {
    const vh = `vh${n}`;
    // `ip ... netns PATH` accepts a namespace file path, so no named netns is needed.
    await this.ipOk('link', 'add', vh, 'type', 'veth', 'peer', 'name', 'eth0', 'address', hostMac(n), 'netns', hostNs);
    await this.ipOk('link', 'set', vh, 'master', 'br0', 'up');
    const inHost = (...args: string[]) => runOk(['nsenter', `--net=${hostNs}`, 'ip', ...args]);
    await inHost('link', 'set', 'lo', 'up');
    await inHost('addr', 'add', `${hostIp(n)}/${FABRIC_PREFIX}`, 'dev', 'eth0');
    await inHost('link', 'set', 'eth0', 'up');
    await inHost('route', 'add', 'default', 'via', FABRIC_IP);
  }

  /**
   * Pulls host `n`'s cable: its veth goes down on the fabric side, where the host cannot undo it.
   * Open TCP connections survive a short cut (as on a real flaky link). With `reset`, the
   * fabric also answers its own sockets' packets to the host with a TCP reset, so a controller
   * notices at its next send instead of retransmitting for minutes; the host side still sees
   * silence, as a host behind a cut cable would.
   */
  async cutCable(n: number, opts: { reset?: boolean } = {}): Promise<void> {
    if (opts.reset) {
      await this.execOk(['iptables', '-I', 'OUTPUT', ...this.rejectRule(n)]);
    }
    await this.ipOk('link', 'set', `vh${n}`, 'down');
  }

  /** Plugs host `n`'s cable back in and removes any reset rule added by {@link cutCable}. */
  async restoreCable(n: number): Promise<void> {
    // Delete every copy of the rule (cutCable may have been called twice); -D fails when none is left.
    for (let i = 0; i < 10; i++) {
      const r = await this.exec(['iptables', '-D', 'OUTPUT', ...this.rejectRule(n)]);
      if (r.exitCode !== 0) break;
    }
    await this.ipOk('link', 'set', `vh${n}`, 'up');
  }

  /** Runs a command to completion inside the fabric namespace. */
  exec(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    return run(['nsenter', `--net=${this.nsFile}`, '--', ...argv], opts);
  }

  /**
   * Starts a long-running process (e.g. the controller) inside the fabric namespace. It is
   * not detached: it belongs to the caller, who must record its PID for cleanup (the cluster
   * does). `nsenter --net` execs the program directly, so the PID is the program's own.
   */
  spawn(argv: readonly string[], opts: FabricSpawnOptions = {}): ChildProcess {
    return spawn('nsenter', [`--net=${this.nsFile}`, '--', ...argv], {
      stdio: opts.stdio ?? 'pipe',
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
  }

  private rejectRule(n: number): string[] {
    return ['-d', hostIp(n), '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'];
  }

  private async execOk(argv: readonly string[]): Promise<void> {
    const r = await this.exec(argv);
    if (r.exitCode !== 0) throw new Error(`fabric: ${argv.join(' ')} exited ${r.exitCode}: ${r.stderr.trim()}`);
  }

  private ipOk(...args: string[]): Promise<void> {
    return this.execOk(['ip', ...args]);
  }
}
