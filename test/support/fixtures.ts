import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { join } from '../../agent/src/enroll/join.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { AgentState } from '../../agent/src/state/agent-state.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import type { HostFacts } from '../../common/src/gen/ferry/v1/common.js';
import { formatJoinString } from '../../common/src/join-string.js';
import { silentLogger } from '../../common/src/log.js';
import { loadControllerConfig, type RawConfig } from '../../controller/src/config.js';
import { Controller } from '../../controller/src/controller.js';
import { LinkProxy } from './link-proxy.js';

/** A temp directory removed by cleanup(). */
export function tempDir(prefix = 'ferry-test-'): string {
  return mkdtempSync(pathJoin(tmpdir(), prefix));
}

/** Fixed facts so tests do not spend time probing the machine. */
export function fakeFacts(hostname: string): HostFacts {
  return {
    hostname, os: 'Debian GNU/Linux', osRelease: '12', kernel: '6.1.0', arch: 'x64', cpus: 2, memoryBytes: 1 << 30,
    disks: [], interfaces: [], tools: [{ name: 'systemd', present: true, version: '252' }], bootTimeMs: 0,
  };
}

const chunkDirs = new Map<string, string>();

/**
 * The chunk directory every replica on the PostgreSQL store `store` shares,
 * as docs/ha.md asks of a deployment (one per store; removed when the test
 * process exits).
 */
export function sharedChunkDir(store: string): string {
  let dir = chunkDirs.get(store);
  if (!dir) {
    dir = tempDir('ferry-shared-chunks-');
    if (chunkDirs.size === 0) process.on('exit', () => { for (const d of chunkDirs.values()) rmSync(d, { recursive: true, force: true }); });
    chunkDirs.set(store, dir);
  }
  return dir;
}

/** A real controller on 127.0.0.1:0 with its own data directory (replicas on one PostgreSQL store: one shared chunk directory, unless flags give one). */
export async function startController(flags: RawConfig = {}, dataDir = tempDir()): Promise<Controller> {
  const store = typeof flags.store === 'string' && flags.store.startsWith('postgres') ? flags.store : undefined;
  // The operations listener on a port of its own, not the default --listen port + 1 (a test that fixes --listen cannot promise that one).
  const cfg = loadControllerConfig({ data: dataDir, listen: '127.0.0.1:0', heartbeat: '5s', 'http-addr': '127.0.0.1:0',
    ...(store ? { chunks: sharedChunkDir(store) } : {}), ...flags }, undefined, {});
  return Controller.start(cfg, silentLogger());
}

/** A join string for a fresh token on `c`. */
export async function joinString(c: Controller, opts: { uses?: number; ttlMs?: number; labels?: Record<string, string> } = {}): Promise<string> {
  const { token } = await c.ctx.tokens.create({ ttlMs: opts.ttlMs ?? 3_600_000, maxUses: opts.uses ?? 1, labels: opts.labels ?? {} });
  return formatJoinString({ addresses: c.ctx.joinAddresses(), token, caPin: c.pin });
}

export interface TestAgent {
  id: string;
  state: AgentState;
  loop: SessionLoop;
  hostname: string;
}

/** Enrolls an agent in a temp state dir (real key, CSR, TLS) and optionally starts its session. */
export async function enrollAgent(c: Controller, hostname: string, opts: { labels?: Record<string, string>; start?: boolean; js?: string } = {}): Promise<TestAgent> {
  const state = new AgentState(tempDir('ferry-agent-'));
  const identity = await join({ joinString: opts.js ?? (await joinString(c, { labels: opts.labels })), state, facts: fakeFacts(hostname) });
  const loop = new SessionLoop({
    state, facts: async () => fakeFacts(hostname), log: silentLogger(), backoff: new Backoff(50, 500),
  });
  if (opts.start !== false) loop.start();
  return { id: identity.agentId, state, loop, hostname };
}

/**
 * An enrolled, started agent that reaches the controller only through a
 * LinkProxy the test can cut (a thin WAN link going down). Close the proxy
 * after the test.
 */
export async function enrollBehindLink(c: Controller, hostname: string, labels: Record<string, string>): Promise<{ agent: TestAgent; proxy: LinkProxy }> {
  const proxy = await LinkProxy.start(c.address);
  const agent = await enrollAgent(c, hostname, { start: false, labels });
  const { identity, keyPem, certPem, caPem } = agent.state.load();
  agent.state.saveEnrollment(keyPem, certPem, caPem, { ...identity, addresses: [proxy.address] });
  agent.loop = new SessionLoop({ state: agent.state, facts: async () => fakeFacts(hostname), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
  agent.loop.start();
  return { agent, proxy };
}

/** Polls `cond` until true or throws after `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 10_000, what: string | (() => string) = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`);
}

/** Stops agents and the controller and removes their directories. */
export async function cleanup(c: Controller | undefined, agents: TestAgent[] = []): Promise<void> {
  await Promise.all(agents.map((a) => a.loop.stop(500)));
  for (const a of agents) rmSync(a.state.dir, { recursive: true, force: true });
  if (c) {
    await c.stop(1_000);
    rmSync(c.config.dataDir, { recursive: true, force: true });
  }
}
