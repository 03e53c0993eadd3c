/**
 * The foundation run's own processes: bookkeeping of every child it starts
 * (stopped, and the temp directory removed, at the end, on failure and on
 * Ctrl-C), its progress lines, and the controller under test with
 * controller-probe.js preloaded. Apart from the phases of the run, which
 * only start and stop processes through this.
 *
 * Nothing happens on import: the temp directory and the signal handlers
 * come with `new FoundationProcs()`, which run.ts makes only once it knows
 * the foundation benchmark is the one to run.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FoundationOptions } from './foundation-options.js';
import { exited, FERRY, terminate } from './kit.js';
import { nodeCommand, procCpuMs, Rpc, withTimeout, type ProcMem } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/scripts/bench

/** One line of progress on stderr. */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Children and the temp directory of one foundation run. */
export class FoundationProcs {
  private readonly children = new Set<ChildProcess>();
  readonly tmp = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
  private cleaning: Promise<void> | undefined;

  constructor(private readonly keep: boolean) {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        progress(`${sig}: cleaning up`);
        void this.cleanup().then(() => process.exit(130));
      });
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; only processes this run started. */
  readonly stopChild = async (c: ChildProcess, graceMs = 10_000): Promise<void> => {
    if (!exited(c)) await terminate(c, graceMs);
    this.children.delete(c);
  };

  cleanup(): Promise<void> {
    this.cleaning ??= (async () => {
      await Promise.all([...this.children].map((c) => this.stopChild(c, 5_000)));
      if (!this.keep) rmSync(this.tmp, { recursive: true, force: true });
      else progress(`kept ${this.tmp}`);
    })();
    return this.cleaning;
  }

  /**
   * Spawns a child with an IPC channel; raises its open-files limit through
   * the shell when this process's soft limit is below `needFds`.
   */
  readonly spawnNode = (args: string[], needFds: number, stdio: SpawnOptions['stdio']): ChildProcess => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FERRY_')));
    const cmd = nodeCommand(args, needFds);
    const c = spawn(cmd.file, cmd.args, { stdio, env });
    this.children.add(c);
    c.once('exit', () => this.children.delete(c));
    return c;
  };
}

// ---- the controller under test ----------------------------------------------

/** The controller under test: `node bin/ferry.js controller start`, probed over IPC. */
export class ControllerProc {
  private constructor(private readonly p: FoundationProcs, readonly proc: ChildProcess, readonly rpc: Rpc, readonly port: number, readonly dataDir: string) {}

  get pid(): number {
    return this.proc.pid!;
  }

  static async start(p: FoundationProcs, o: FoundationOptions, dataDir: string, listen: string, logName: string, nodeArgs: string[] = []): Promise<ControllerProc> {
    const log = openSync(join(o.logs, logName), 'w');
    const proc = p.spawnNode([
      '--expose-gc', ...nodeArgs, '--import', pathToFileURL(join(here, 'controller-probe.js')).href,
      FERRY, 'controller', 'start', '--data', dataDir, '--listen', listen,
    ], o.agents * 2 + 512, ['ignore', log, 'pipe', 'ipc']);
    closeSync(log);
    const rpc = new Rpc(proc, 'controller');
    let stderr = '';
    const port = await withTimeout(new Promise<number>((resolve, reject) => {
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (d: string) => {
        stderr += d;
        const m = /agents dial:\s+\S+:(\d+)/.exec(stderr);
        if (m && /CA pin:/.test(stderr)) resolve(Number(m[1]));
      });
      proc.once('exit', (code) => reject(new Error(`controller exited with ${code} while starting:\n${stderr}`)));
    }), 60_000, 'controller start');
    // Keep draining stderr into the log of this run.
    proc.stderr!.on('data', (d: string) => { stderr = (stderr + d).slice(-20_000); });
    return new ControllerProc(p, proc, rpc, port, dataDir);
  }

  mem(gc: boolean): Promise<ControllerMem> {
    return this.rpc.call<ControllerMem>('mem', { gc }, 60_000);
  }

  cpuMs(): number {
    return procCpuMs(this.pid);
  }

  async stop(): Promise<void> {
    await this.p.stopChild(this.proc, 20_000);
  }
}

/** What controller-probe.js reports of the controller's memory. */
export interface ControllerMem {
  proc: ProcMem;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  mallocedMemory: number;
  totalPhysicalSize: number;
  resources: Record<string, number>;
}
