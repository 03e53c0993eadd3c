/**
 * The parent side of the simulated fleet (fleet.js): `procs` child
 * processes sharing N agents, driven over IPC. Used by the foundation and
 * rollouts suites; each passes its own spawn (its own bookkeeping of
 * children), which must raise the open-files limit to `needFds`.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { procCpuMs, Rpc } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Spawns `node <args>` with an IPC channel and at least `needFds` open files allowed. */
export type SpawnNode = (args: string[], needFds: number, stdio: StdioOptions) => ChildProcess;

export class FleetProcs {
  readonly procs: Array<{ rpc: Rpc; proc: ChildProcess; count: number }> = [];

  /** Starts the processes one after the other and gives each its share of the N agents. */
  static async start(spawnNode: SpawnNode, n: number, procs: number, stateRoot: string, logDir: string): Promise<FleetProcs> {
    const f = new FleetProcs();
    let first = 0;
    for (let p = 0; p < procs; p++) {
      const count = Math.floor(n / procs) + (p < n % procs ? 1 : 0);
      const log = openSync(join(logDir, `fleet-${p}.log`), 'w');
      const proc = spawnNode(['--expose-gc', join(here, 'fleet.js')], count * 4 + 512, ['ignore', log, log, 'ipc']);
      closeSync(log);
      const rpc = new Rpc(proc, `fleet-${p}`);
      f.procs.push({ rpc, proc, count });
      await rpc.call('init', { count, firstIndex: first, stateRoot }, 120_000);
      first += count;
    }
    return f;
  }

  /** Calls `cmd` in every fleet process at once. */
  all<T>(cmd: string, args: unknown, timeoutMs: number): Promise<T[]> {
    return Promise.all(this.procs.map((p) => p.rpc.call<T>(cmd, args, timeoutMs)));
  }

  /** CPU ms all fleet processes have used so far. */
  cpuMs(): number {
    return this.procs.reduce((s, p) => s + procCpuMs(p.proc.pid!), 0);
  }

  /** Asks each process to exit, then `stop` (SIGTERM, SIGKILL) whatever is left. */
  async stop(stop: (c: ChildProcess) => Promise<void>): Promise<void> {
    await Promise.all(this.procs.map(async (p) => {
      await p.rpc.call('exit', {}, 5_000).catch(() => undefined);
      await stop(p.proc);
    }));
  }
}
