/**
 * Manual benchmark (not a test, no assertions): stage a bundle of N MiB from
 * an in-memory source that generates chunk bytes on demand (so the source
 * itself holds nothing), and report throughput and peak RSS.
 *   npx tsc -p tsconfig.json && node build/test/unit/agent-bundles/stage.bench.js [MiB] [dir] [--grpc] [--chunk-mib=N]
 * --grpc serves the chunks from a grpc-js Chunks server in a child process
 * (plaintext, 127.0.0.1) through GrpcChunkSource, so RSS is the agent side only.
 */
import { credentials, Server, ServerCredentials, type ServerWritableStream } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey, signManifest, type BundleFile } from '../../../common/src/bundle/manifest.js';
import { ChunksService, type FetchChunksRequest } from '../../../common/src/gen/ferry/v1/chunks.js';
import type { ChunkData } from '../../../common/src/gen/ferry/v1/common.js';
import { serverOptions } from '../../../common/src/grpc-options.js';
import { silentLogger } from '../../../common/src/log.js';
import { GrpcChunkSource } from '../../../agent/src/bundles/grpc-chunk-source.js';
import { BundleCache } from '../../../agent/src/bundles/bundle-cache.js';
import type { ChunkSource, FetchedChunk } from '../../../agent/src/bundles/chunk-source.js';
import { seededBytes } from '../bundle/prng.js';
import { unsignedManifest } from './fixtures.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const mib = Number(args[0] ?? 512);
const base = args[1] ?? tmpdir();
const grpcMode = flags.includes('--grpc');
const CHUNK = Number(flags.find((f) => f.startsWith('--chunk-mib='))?.split('=')[1] ?? 1) * 1024 * 1024; // default ~ the chunker's average
const FILES = 4;

// Chunk i of the bundle is seededBytes(CHUNK, i + 1): regenerated on every fetch.
const seedOf = new Map<string, number>();
const files: BundleFile[] = [];
let seed = 1;
for (let f = 0; f < FILES; f++) {
  const whole = createHash('sha256');
  const chunks = [];
  for (let i = 0; i < mib / FILES / (CHUNK / 2 ** 20); i++, seed++) {
    const b = seededBytes(CHUNK, seed);
    const digest = createHash('sha256').update(b).digest('hex');
    whole.update(b);
    seedOf.set(digest, seed);
    chunks.push({ digest, size: CHUNK });
  }
  files.push({ path: `images/layer-${f}.tar`, mode: 0o644, size: chunks.length * CHUNK, sha256: whole.digest('hex'), chunks });
}
const key = generateSigningKey();
const signed = signManifest(unsignedManifest(files, 'bench', '1'), key.privatePem);

let lastYield = 0;
const fakeSource: ChunkSource = {
  async *fetch(digests: string[]): AsyncGenerator<FetchedChunk> {
    for (const digest of digests) {
      await new Promise((r) => setImmediate(r)); // yield like a network stream would
      yield { digest, data: seededBytes(CHUNK, seedOf.get(digest)!) };
      lastYield = performance.now();
    }
  },
};

let source = fakeSource;
let child: ChildProcess | undefined;
if (flags.includes('--serve')) {
  // Child: serve the same deterministic chunks, print the port, run until killed.
  const server = new Server(serverOptions({ 'grpc.max_send_message_length': 16 * 1024 * 1024 }));
  server.addService(ChunksService, {
    fetch(call: ServerWritableStream<FetchChunksRequest, ChunkData>) {
      (async () => {
        for (const digest of call.request.digests) {
          if (call.cancelled) return;
          if (!call.write({ digest, data: seededBytes(CHUNK, seedOf.get(digest)!) })) await new Promise((r) => call.once('drain', r));
        }
        call.end();
      })().catch((e) => call.destroy(e as Error));
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  console.log(port);
  await new Promise(() => undefined);
}
if (grpcMode) {
  child = spawn(process.execPath, [process.argv[1]!, ...process.argv.slice(2), '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((res) => child!.stdout!.once('data', (d: Buffer) => res(d.toString().trim())));
  source = GrpcChunkSource.connect(`127.0.0.1:${port}`, credentials.createInsecure());
}

let peak = 0;
const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 20);
const dir = await mkdtemp(join(base, 'ferry-stage-bench-'));
try {
  global.gc?.();
  const rssBefore = process.memoryUsage.rss();
  const t0 = performance.now();
  const r = await new BundleCache(dir, silentLogger()).stage(signed, { trustedKeys: [key.publicPem], source });
  const secs = (performance.now() - t0) / 1000;
  if (!grpcMode) console.log(`fetch phase (into staging) ${((lastYield - t0) / 1000).toFixed(2)} s, assembly ${((performance.now() - lastYield) / 1000).toFixed(2)} s`);
  clearInterval(sampler);
  const maxRss = process.resourceUsage().maxRSS * 1024;
  console.log(`${grpcMode ? 'grpc' : 'fake'} source, ${CHUNK / 2 ** 20} MiB chunks: staged ${mib} MiB (${r.bytesFetched} bytes fetched) in ${secs.toFixed(2)} s = ${(mib / secs).toFixed(0)} MiB/s`);
  console.log(`rss before ${(rssBefore / 2 ** 20).toFixed(0)} MiB, sampled peak ${(peak / 2 ** 20).toFixed(0)} MiB, maxRSS ${(maxRss / 2 ** 20).toFixed(0)} MiB`);
} finally {
  clearInterval(sampler);
  if (source instanceof GrpcChunkSource) source.close();
  child?.kill();
  await rm(dir, { recursive: true, force: true });
}
