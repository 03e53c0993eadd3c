/**
 * Ferry's own processes in the benchmark suites: the real controller
 * (`bin/ferry.js controller start`) and real agents (`bin/ferry-agent.js
 * join` / `run`) as children of a suite's Janitor (kit.ts). Apart from the
 * kit because this is what the suites measure, and the kit the generic
 * process bookkeeping around it.
 */
import { closeSync, openSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import type { Admin } from '../../controller/src/cli/admin-client.js';
import { benchEnv, cpuMsOf, FERRY, FERRY_AGENT, memOf, runBounded, type Janitor } from './kit.js';
import { sleep, withTimeout } from './lib.js';

// ---- the controller ------------------------------------------------------------------

export class ControllerProc {
  private constructor(private readonly j: Janitor, readonly proc: ChildProcess, readonly address: string, readonly dataDir: string) {}

  get pid(): number {
    return this.proc.pid!;
  }

  /** `node [nodeArgs] bin/ferry.js controller start --data DIR --listen LISTEN`; resolves once it prints where agents dial. */
  static async start(j: Janitor, dataDir: string, listen: string, logPath: string, nodeArgs: string[] = [], extraArgs: string[] = []): Promise<ControllerProc> {
    const log = openSync(logPath, 'a');
    // With the glibc malloc settings a deployment starts it with (common/src/malloc-env.ts, README).
    const proc = j.spawn(process.execPath, [...nodeArgs, FERRY, 'controller', 'start', '--data', dataDir, '--listen', listen, ...extraArgs], { stdio: ['ignore', log, 'pipe'], env: benchEnv() });
    closeSync(log);
    let stderr = '';
    const dial = await withTimeout(new Promise<{ host: string; port: number }>((res, rej) => {
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (d: string) => {
        stderr = (stderr + d).slice(-50_000);
        const m = /agents dial:\s+(\S+):(\d+)/.exec(stderr);
        if (m && /CA pin:/.test(stderr)) res({ host: m[1]!, port: Number(m[2]) });
      });
      proc.once('exit', (code) => rej(new Error(`controller exited with ${code} while starting:\n${stderr}`)));
    }), 60_000, 'controller start');
    proc.stderr!.on('data', () => undefined); // keep draining
    return new ControllerProc(j, proc, `${dial.host}:${dial.port}`, dataDir);
  }

  cpuMs(): number {
    return cpuMsOf(this.pid);
  }

  async stop(): Promise<void> {
    await this.j.stop(this.proc, 20_000);
  }
}

// ---- real agents ---------------------------------------------------------------------

export interface Enrolled { agentId: string; stateDir: string }

/**
 * `ferry-agent join` for each state dir, `parallel` at a time; `wrap(i)` is
 * put in front of the i-th command (`ip netns exec NS` to join from inside a
 * simulated site).
 */
export async function enrollAgents(j: Janitor, joinString: string, stateDirs: string[], parallel = 4, wrap: (i: number) => string[] = () => []): Promise<Enrolled[]> {
  const out: Enrolled[] = new Array(stateDirs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, stateDirs.length) }, async () => {
    for (let i = next++; i < stateDirs.length; i = next++) {
      const [file, ...args] = [...wrap(i), process.execPath, FERRY_AGENT, 'join', joinString, '--state', stateDirs[i]!, '--json'];
      const r = await runBounded(j, file!, args, 120_000);
      if (r.code !== 0) throw new Error(`ferry-agent join exited ${r.code}: ${r.stderr.trim()}`);
      out[i] = { agentId: (JSON.parse(r.stdout.trim()) as { agentId: string }).agentId, stateDir: stateDirs[i]! };
    }
  }));
  return out;
}

/** One `ferry-agent run` process. */
export class AgentProc {
  private constructor(private readonly j: Janitor, readonly proc: ChildProcess, readonly agentId: string, readonly stateDir: string) {}

  get pid(): number {
    return this.proc.pid!;
  }

  /** `wrap` goes in front of the command (`ip netns exec NS` to run it inside a simulated site). */
  static start(j: Janitor, a: Enrolled, logPath: string, nodeArgs: string[] = [], env: NodeJS.ProcessEnv = process.env, wrap: string[] = []): AgentProc {
    const log = openSync(logPath, 'a');
    // With the agent unit's glibc malloc settings (agent/src/service/unit-file.ts).
    const [file, ...args] = [...wrap, process.execPath, ...nodeArgs, FERRY_AGENT, 'run', '--state', a.stateDir];
    const proc = j.spawn(file!, args, { stdio: ['ignore', log, log], env: benchEnv(env) });
    closeSync(log);
    return new AgentProc(j, proc, a.agentId, a.stateDir);
  }

  mem(): { hwm: number; rss: number } {
    return memOf(this.pid);
  }

  cpuMs(): number {
    return cpuMsOf(this.pid);
  }

  async stop(): Promise<void> {
    await this.j.stop(this.proc, 15_000);
  }
}

/** Waits until the controller lists every id in `ids` as connected. */
export async function waitConnected(admin: Admin, ids: string[], timeoutMs: number): Promise<void> {
  const want = new Set(ids);
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { agents } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: false });
    const up = agents.filter((a) => want.has(a.id) && a.connected).length;
    if (up === want.size) return;
    if (Date.now() > until) throw new Error(`only ${up} of ${want.size} agents connected within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}
