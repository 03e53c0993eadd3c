/**
 * Child process of the bundles suite for finding where staging time goes.
 * It holds an enrolled agent's identity (certificate from a real
 * `ferry-agent join`) and talks to the real controller over mTLS, like the
 * agent does, but runs the pieces one at a time:
 *
 * - `stage`: the product path (BundleCache.stage with GrpcChunkSource,
 *   its default calls in flight), with the time the last chunk arrived recorded, so
 *   fetch (+ verify + write into the part files, files finished as they
 *   complete) and the tail (the last files read back, hashed, fsynced,
 *   renamed) are timed apart; optionally CPU profiled through the inspector;
 * - `fetch`: the same batches and concurrency as the product, but the
 *   chunks are only received (`discard`), received and hashed (`verify`),
 *   or hashed and written without fsync (`nosync`);
 * - `h2fetch`: the client of the plain node:http2 peer (h2-peer.ts), 16 MiB windows;
 * - `grpcfetch`: the client of the plain grpc-js peer (h2-peer.ts): one long
 *   call, 1 MiB raw messages, 16 MiB window, bytes dropped.
 *
 * Driven by bundles.ts over IPC (lib.ts Rpc); exits with its parent.
 */
import { Session } from 'node:inspector/promises';
import { connect as h2connect } from 'node:http2';
import { readFileSync } from 'node:fs';
import { Client, credentials } from '@grpc/grpc-js';
import { PEER_GRPC_METHOD, PEER_MESSAGE_BYTES, PEER_WINDOW_BYTES } from './peer-wire.js';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BundleCache } from '../../agent/src/bundles/bundle-cache.js';
import { batches, type WantedChunk } from '../../agent/src/bundles/chunk-fetcher.js';
import type { ChunkSource, FetchedChunk } from '../../agent/src/bundles/chunk-source.js';
import { GrpcChunkSource } from '../../agent/src/bundles/grpc-chunk-source.js';
import { controllerCreds } from '../../agent/src/grpc-creds.js';
import { AgentState } from '../../agent/src/state/agent-state.js';
import type { BundleManifest, SignedManifest } from '../../common/src/bundle/manifest.js';
import { silentLogger } from '../../common/src/log.js';
import { procMem, serveRpc } from './lib.js';
import { summarizeProfile, type CpuProfile, type ProfileSummary } from './prof-summary.js';

let source: GrpcChunkSource | undefined;
let dial: ((options: Record<string, number>) => GrpcChunkSource) | undefined;
let trusted: string[] = [];

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function distinct(signed: SignedManifest): WantedChunk[] {
  const m = JSON.parse(signed.manifest) as BundleManifest;
  const seen = new Map<string, number>();
  for (const f of m.files) for (const c of f.chunks) seen.set(c.digest, c.size);
  return [...seen].map(([digest, size]) => ({ digest, size }));
}

async function withProfile<T>(on: boolean, fn: () => Promise<T>): Promise<{ result: T; profile?: ProfileSummary }> {
  if (!on) return { result: await fn() };
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.start');
  try {
    const result = await fn();
    const { profile } = await s.post('Profiler.stop') as { profile: CpuProfile };
    return { result, profile: summarizeProfile(profile, 14) };
  } finally {
    s.disconnect();
  }
}

serveRpc({
  init(args: { stateDir: string; address: string }) {
    const loaded = new AgentState(args.stateDir).load();
    trusted = loaded.identity.operatorKeys;
    source = GrpcChunkSource.connect(args.address, controllerCreds(loaded.caPem, loaded));
    dial = (options) => GrpcChunkSource.connect(args.address, controllerCreds(loaded.caPem, loaded), options);
    return { agentId: loaded.identity.agentId, pid: process.pid };
  },

  /** The product's staging path, timed in two phases. */
  async stage(args: { signed: SignedManifest; cacheDir: string; profile: boolean }) {
    let lastChunkAt = 0;
    let firstChunkAt = 0;
    let cpuAtLastChunk = 0;
    let cpuSampledAt = 0;
    const timed: ChunkSource = {
      async *fetch(digests: string[], signal: AbortSignal): AsyncGenerator<FetchedChunk> {
        for await (const c of source!.fetch(digests, signal)) {
          const now = performance.now();
          firstChunkAt ||= now;
          // process.cpuUsage() is a syscall: sample it every 100 ms (the last one lands at most 100 ms early).
          if (now - cpuSampledAt > 100) {
            cpuAtLastChunk = cpuMs();
            cpuSampledAt = now;
          }
          lastChunkAt = now;
          yield c;
        }
      },
    };
    const cache = new BundleCache(args.cacheDir, silentLogger());
    // Peaks of what makes up the RSS, sampled every 100 ms (memoryUsage() is not free).
    const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      for (const k of Object.keys(peak) as Array<keyof typeof peak>) peak[k] = Math.max(peak[k], m[k]);
    }, 100);
    const before = process.memoryUsage();
    const cpu0 = cpuMs();
    const t0 = performance.now();
    const { result, profile } = await withProfile(args.profile, () => cache.stage(args.signed, { trustedKeys: trusted, source: timed })).finally(() => clearInterval(sampler));
    const t1 = performance.now();
    const cpu1 = cpuMs();
    await rm(args.cacheDir, { recursive: true, force: true });
    return {
      wallMs: t1 - t0, firstChunkMs: firstChunkAt - t0, fetchMs: lastChunkAt - t0, assembleMs: t1 - lastChunkAt,
      cpuMs: cpu1 - cpu0, fetchCpuMs: cpuAtLastChunk - cpu0, assembleCpuMs: cpu1 - cpuAtLastChunk, bytesFetched: result.bytesFetched, profile, hwmKiB: procMem(process.pid).vmHwmKiB,
      memBefore: before, memPeak: peak,
    };
  },

  /** Only the fetch, with less done per chunk than the product does. */
  async fetch(args: { signed: SignedManifest; mode: 'discard' | 'verify' | 'nosync'; dir: string; concurrency: number; window?: number; shortCalls?: boolean }) {
    // A flow-control window other than the product's: a channel of its own.
    const src = args.window === undefined ? source! : dial!({ 'grpc-node.flow_control_window': args.window });
    // shortCalls: the batching before issue 16 (≤ 16 chunks / 4 MiB per call), for comparison.
    const queue = args.shortCalls ? batches(distinct(args.signed), 16, 4 * 1024 * 1024) : batches(distinct(args.signed));
    let bytes = 0;
    const known = new Set<string>();
    const cpu0 = cpuMs();
    const t0 = performance.now();
    const signal = new AbortController().signal;
    const worker = async () => {
      for (let b = queue.shift(); b; b = queue.shift()) {
        for await (const { digest, data, release } of src.fetch(b.map((c) => c.digest), signal)) {
          bytes += data.length;
          // As the product does: the received buffer goes back to the source's pool once the chunk is done with.
          if (args.mode === 'discard') {
            release?.();
            continue;
          }
          const actual = createHash('sha256').update(data).digest('hex');
          if (actual !== digest) throw new Error(`chunk ${digest} hashes to ${actual}`);
          if (args.mode === 'verify') {
            release?.();
            continue;
          }
          const shard = join(args.dir, digest.slice(0, 2));
          if (!known.has(shard)) {
            await mkdir(shard, { recursive: true });
            known.add(shard);
          }
          const tmp = join(shard, `.tmp-${randomBytes(6).toString('hex')}`);
          const fh = await open(tmp, 'wx');
          try {
            await fh.writeFile(data);
          } finally {
            await fh.close();
          }
          await rename(tmp, join(shard, digest));
          release?.();
        }
      }
    };
    await Promise.all(Array.from({ length: args.concurrency }, worker));
    if (src !== source) src.close();
    const wallMs = performance.now() - t0;
    const cpu = cpuMs() - cpu0;
    await rm(args.dir, { recursive: true, force: true });
    return { wallMs, cpuMs: cpu, bytes };
  },

  /** The plain-Node peer's client: every file once over one HTTP/2 + TLS connection, `concurrency` streams at a time, bytes dropped. */
  async h2fetch(args: { port: number; files: string[]; concurrency: number }) {
    const session = h2connect(`https://127.0.0.1:${args.port}`, { rejectUnauthorized: false, settings: { initialWindowSize: PEER_WINDOW_BYTES } });
    session.once('connect', () => session.setLocalWindowSize(PEER_WINDOW_BYTES));
    const queue = [...args.files];
    let bytes = 0;
    const cpu0 = cpuMs();
    const t0 = performance.now();
    try {
      await Promise.all(Array.from({ length: args.concurrency }, async () => {
        for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
          await new Promise<void>((res, rej) => {
            const req = session.request({ ':path': `/${f.split('/').map(encodeURIComponent).join('/')}` });
            req.on('response', (h) => { if (h[':status'] !== 200) rej(new Error(`${f}: HTTP ${h[':status']}`)); });
            req.on('data', (d: Buffer) => { bytes += d.length; });
            req.on('end', res);
            req.on('error', rej);
            req.end();
          });
        }
      }));
    } finally {
      session.close();
    }
    return { wallMs: performance.now() - t0, cpuMs: cpuMs() - cpu0, bytes };
  },

  /** The plain grpc-js peer's client: every file in one long server-streaming call, bytes dropped. */
  async grpcfetch(args: { port: number; certPath: string; files: string[] }) {
    const client = new Client(`127.0.0.1:${args.port}`, credentials.createSsl(readFileSync(args.certPath)), {
      'grpc-node.flow_control_window': PEER_WINDOW_BYTES, 'grpc.max_receive_message_length': 2 * PEER_MESSAGE_BYTES,
    });
    let bytes = 0;
    const cpu0 = cpuMs();
    const t0 = performance.now();
    try {
      const id = (b: Buffer) => b;
      const call = client.makeServerStreamRequest<Buffer, Buffer>(PEER_GRPC_METHOD, id, id, Buffer.from(args.files.join('\n')));
      for await (const m of call as AsyncIterable<Buffer>) bytes += m.length;
    } finally {
      client.close();
    }
    return { wallMs: performance.now() - t0, cpuMs: cpuMs() - cpu0, bytes };
  },

  mem() {
    return procMem(process.pid);
  },

  exit() {
    source?.close();
    setTimeout(() => process.exit(0), 50);
    return {};
  },
}, () => process.exit(0));
