/**
 * Small helpers shared by the foundation benchmark's processes. Node
 * built-ins only: the controller probe preloads this file into the
 * controller process, so it must not pull anything else in.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Summary statistics of a sample (milliseconds or whatever unit went in). */
export interface Stats {
  n: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length,
    min: s[0] ?? Number.NaN,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? Number.NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : Number.NaN,
  };
}

/** Memory of a process as the kernel sees it, from /proc/PID/status (KiB). */
export interface ProcMem {
  vmRssKiB: number;
  rssAnonKiB: number;
  rssFileKiB: number;
  vmHwmKiB: number;
  threads: number;
}

export function procMem(pid: number): ProcMem {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : Number.NaN;
  };
  return {
    vmRssKiB: field('VmRSS'), rssAnonKiB: field('RssAnon'), rssFileKiB: field('RssFile'),
    vmHwmKiB: field('VmHWM'), threads: field('Threads'),
  };
}

/** User + system CPU time a process has used so far, in ms (USER_HZ is 100 on Linux). */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may contain spaces; fields resume after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) * 10;
}

/** This process's open-files limit, from /proc/self/limits. */
export function fdLimit(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const n = (s: string | undefined) => (s === undefined || s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/**
 * `node <args>` as a command line that raises the open-files limit to
 * `needFds` through the shell when this process's soft limit is lower (and
 * the hard limit allows it).
 */
export function nodeCommand(args: string[], needFds: number): { file: string; args: string[] } {
  const { soft, hard } = fdLimit();
  if (soft < needFds && hard >= needFds) return { file: 'sh', args: ['-c', `ulimit -n ${needFds} && exec "$0" "$@"`, process.execPath, ...args] };
  return { file: process.execPath, args };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects after `ms` with a message naming what was awaited. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

// ---- request/response over a child process's IPC channel -----------------

interface RpcRequest { rpc: number; cmd: string; args: unknown }
interface RpcReply { rpc: number; ok: boolean; result?: unknown; error?: string }

/** Parent side: calls commands a child serves with serveRpc(). */
export class Rpc {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(readonly child: ChildProcess, readonly name: string) {
    child.on('message', (m: RpcReply) => {
      if (!m || typeof m !== 'object' || typeof m.rpc !== 'number') return;
      const p = this.pending.get(m.rpc);
      if (!p) return;
      this.pending.delete(m.rpc);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${this.name}: ${m.error}`));
    });
    child.on('exit', (code, sig) => {
      for (const p of this.pending.values()) p.reject(new Error(`${this.name} exited (code ${code}, signal ${sig}) before answering`));
      this.pending.clear();
    });
  }

  call<T>(cmd: string, args: unknown = {}, timeoutMs = 60_000): Promise<T> {
    const rpc = this.next++;
    const answer = new Promise<T>((resolve, reject) => {
      this.pending.set(rpc, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ rpc, cmd, args } satisfies RpcRequest, (err) => {
        if (err) {
          this.pending.delete(rpc);
          reject(new Error(`${this.name}: cannot send ${cmd}: ${err.message}`));
        }
      });
    });
    return withTimeout(answer, timeoutMs, `${this.name} ${cmd}`).finally(() => this.pending.delete(rpc));
  }
}

type Handler = (args: never) => Promise<unknown> | unknown;

/**
 * Child side: answers Rpc calls. When the parent goes away (even killed),
 * `onParentGone` runs, so no benchmark process outlives the run.
 */
export function serveRpc(handlers: Record<string, Handler>, onParentGone: () => void): void {
  if (!process.send) throw new Error('this process must be started with an IPC channel');
  process.on('message', (m: RpcRequest) => {
    if (!m || typeof m !== 'object' || typeof m.rpc !== 'number') return;
    const h = handlers[m.cmd];
    const reply = (r: Omit<RpcReply, 'rpc'>) => { if (process.connected) process.send!({ rpc: m.rpc, ...r }); };
    if (!h) {
      reply({ ok: false, error: `unknown command ${m.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => h(m.args as never))
      .then((result) => reply({ ok: true, result }), (err: unknown) => reply({ ok: false, error: (err as Error)?.stack ?? String(err) }));
  });
  process.on('disconnect', onParentGone);
}
