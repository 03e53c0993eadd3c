// GrpcChunkSource against a real grpc-js server on 127.0.0.1:0 with real
// mTLS certificates (the controller's CA code), serving Chunks.Fetch the way
// the controller does: in request order, waiting for 'drain'. The controller's
// own Chunks service is tested on its side; this pins the agent's client.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ChunkNotFoundError } from '../../common/src/bundle/errors.js';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ChunksService, type FetchChunksRequest, type FetchRangesRequest, type SketchChunksRequest } from '../../common/src/gen/ferry/v1/chunks.js';
import { SketchServer, SKETCH_VERSION } from '../../common/src/bundle/sketch.js';
import type { ChunkData } from '../../common/src/gen/ferry/v1/common.js';
import { serverOptions } from '../../common/src/grpc-options.js';
import { toServiceError } from '../../common/src/grpc-status.js';
import { exportPrivateKeyPem, generateKeyPair } from '../../common/src/pki.js';
import { silentLogger } from '../../common/src/log.js';
import { CertificateAuthority } from '../../controller/src/pki/ca.js';
import { controllerCreds } from '../../agent/src/grpc-creds.js';
import { BundleCache } from '../../agent/src/bundles/bundle-cache.js';
import { GrpcChunkSource } from '../../agent/src/bundles/grpc-chunk-source.js';
import { buildBundle, ferryError, seededBytes, sha, tempDir } from '../unit/agent-bundles/fixtures.js';

interface TestServer {
  port: number;
  chunks: Map<string, Buffer>;
  written: number;
  inFlight: number;
  maxInFlight: number;
  cancelled: number;
  server: Server;
}

async function startChunkServer(dir: string, withSketch = false): Promise<{ srv: TestServer; source: () => GrpcChunkSource }> {
  const { ca } = await CertificateAuthority.loadOrCreate(join(dir, 'pki'));
  const { certChainPem, keyPem } = await ca.ensureServerCert(join(dir, 'pki'), ['127.0.0.1']);
  const agentKeys = await generateKeyPair();
  const agentCert = await ca.issue({ publicKey: agentKeys.publicKey, commonName: 'agent-1', role: 'agent', ttlMs: 3600_000 });
  const agentKeyPem = await exportPrivateKeyPem(agentKeys.privateKey);

  const srv: TestServer = { port: 0, chunks: new Map(), written: 0, inFlight: 0, maxInFlight: 0, cancelled: 0, server: new Server(serverOptions({ 'grpc.max_send_message_length': 16 * 1024 * 1024 })) };
  // Sketch/FetchRanges as the controller serves them (the same SketchServer), on request.
  const sketches = new SketchServer(async (d) => {
    const data = srv.chunks.get(d);
    if (!data) throw new ChunkNotFoundError(d);
    return data;
  });
  const unary = <T>(fn: () => Promise<T>) => (cb: sendUnaryData<T>) => fn().then((r) => cb(null, r), (e: unknown) => cb(toServiceError(e) as never));
  const extra: UntypedServiceImplementation = withSketch ? {
    sketch: (call: ServerUnaryCall<SketchChunksRequest, unknown>, cb: sendUnaryData<unknown>) => unary(() => sketches.sketches(call.request.digests))(cb),
    fetchRanges: (call: ServerUnaryCall<FetchRangesRequest, unknown>, cb: sendUnaryData<unknown>) => unary(async () => ({ data: await sketches.ranges(call.request.digest, call.request.ranges) }))(cb),
  } : {};
  srv.server.addService(ChunksService, {
    ...extra,
    fetch(call: ServerWritableStream<FetchChunksRequest, ChunkData>) {
      srv.inFlight++;
      srv.maxInFlight = Math.max(srv.maxInFlight, srv.inFlight);
      call.on('cancelled', () => srv.cancelled++);
      (async () => {
        for (const digest of call.request.digests) {
          if (call.cancelled) return;
          const data = srv.chunks.get(digest);
          if (!data) throw new ChunkNotFoundError(digest);
          srv.written++;
          if (!call.write({ digest, data })) await new Promise<void>((r) => call.once('drain', () => r()));
        }
        call.end();
      })().catch((e) => call.emit('error', toServiceError(e))).finally(() => srv.inFlight--);
    },
  });
  srv.port = await new Promise<number>((res, rej) => srv.server.bindAsync('127.0.0.1:0',
    ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(certChainPem), private_key: Buffer.from(keyPem) }], true),
    (e, p) => (e ? rej(e) : res(p))));
  const creds = controllerCreds(ca.certPem, { keyPem: agentKeyPem, certPem: agentCert.certPem });
  return { srv, source: () => GrpcChunkSource.connect(`127.0.0.1:${srv.port}`, creds) };
}

async function collect(it: AsyncIterable<{ digest: string; data: Buffer }>): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const c of it) out.set(c.digest, c.data);
  return out;
}

describe('agent/bundles: GrpcChunkSource over mTLS', function () {
  this.timeout(30_000);
  let dir: string;
  let srv: TestServer;
  let source: GrpcChunkSource;

  before(async () => {
    dir = await tempDir('ferry-agent-bundles-grpc-');
    const s = await startChunkServer(dir);
    srv = s.srv;
    source = s.source();
  });
  after(async () => {
    source.close();
    srv.server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('receives 4 MiB chunks (and larger) through the raised message limit', async () => {
    const four = seededBytes(4 * 1024 * 1024, 1);
    const six = seededBytes(6 * 1024 * 1024, 2);
    srv.chunks.set(sha(four), four).set(sha(six), six);
    const got = await collect(source.fetch([sha(four), sha(six)], new AbortController().signal));
    assert.deepEqual(got.get(sha(four)), four);
    assert.deepEqual(got.get(sha(six)), six);
  });

  it('maps a missing chunk to CHUNK_NOT_FOUND naming the controller address', async () => {
    const missing = 'e'.repeat(64);
    await assert.rejects(collect(source.fetch([missing], new AbortController().signal)), ferryError('CHUNK_NOT_FOUND', missing, `127.0.0.1:${srv.port}`));
  });

  it('stops promptly on abort and cancels the call on the server', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 32; i++) {
      const b = seededBytes(1024 * 1024, 100 + i);
      srv.chunks.set(sha(b), b);
      ids.push(sha(b));
    }
    const before = srv.cancelled;
    const ac = new AbortController();
    let n = 0;
    const t0 = performance.now();
    await assert.rejects((async () => {
      for await (const _ of source.fetch(ids, ac.signal)) if (++n === 2) ac.abort();
    })(), ferryError('CANCELLED'));
    assert.ok(performance.now() - t0 < 2000);
    const deadline = Date.now() + 2000;
    while (srv.cancelled === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(srv.cancelled, before + 1);
  });

  it('respects backpressure: a stalled consumer stalls the server instead of buffering the whole call', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 64; i++) {
      const b = seededBytes(1024 * 1024, 200 + i);
      srv.chunks.set(sha(b), b);
      ids.push(sha(b));
    }
    const start = srv.written;
    const it = source.fetch(ids, new AbortController().signal)[Symbol.asyncIterator]();
    await it.next();
    await new Promise((r) => setTimeout(r, 500));
    const ahead = srv.written - start;
    await it.return?.(undefined);
    // The call buffers CALL_BUFFERED_MESSAGES, HTTP/2 flow control its window (4 MiB) more, the server its own queue; nowhere near 64.
    assert.ok(ahead < 24, `server wrote ${ahead} of 64 chunks while the consumer held one`);
  });

  it('UNAVAILABLE with a hint when nothing listens', async () => {
    const { ca } = await CertificateAuthority.loadOrCreate(join(dir, 'pki'));
    const dead = GrpcChunkSource.connect('127.0.0.1:1', controllerCreds(ca.certPem), { 'grpc.initial_reconnect_backoff_ms': 100 });
    try {
      await assert.rejects(collect(dead.fetch(['a'.repeat(64)], AbortSignal.timeout(10_000))), ferryError('UNAVAILABLE', '127.0.0.1:1'));
    } finally {
      dead.close();
    }
  });

  it('stages a bundle end to end with several calls in flight on one channel', async () => {
    const key = generateSigningKey();
    const files = [{ path: 'images/a.tar', data: seededBytes(6 * 1024 * 1024, 300) }, { path: 'bin/b', data: seededBytes(2 * 1024 * 1024, 301), mode: 0o755 }];
    const b = buildBundle(files, key.privatePem);
    for (const [d, c] of b.chunks) srv.chunks.set(d, c);
    srv.maxInFlight = 0;
    const cache = new BundleCache(join(dir, 'cache'), silentLogger());
    const r = await cache.stage(b.signed, { trustedKeys: [key.publicPem], source, concurrency: 4 });
    assert.ok(srv.maxInFlight >= 2, `max calls in flight ${srv.maxInFlight}`);
    const { readFile } = await import('node:fs/promises');
    for (const f of files) assert.deepEqual(await readFile(join(cache.filesDir(r.bundleId), f.path)), f.data);
  });

  it('sub-chunk delta fetch over gRPC: Sketch and FetchRanges move about the changed bytes; a server without them answers UNIMPLEMENTED', async () => {
    const key = generateSigningKey();
    const v1 = seededBytes(3 * 1024 * 1024, 400);
    const v2 = Buffer.from(v1);
    for (let i = 0; i < 4; i++) seededBytes(200, 410 + i).copy(v2, 300_000 + i * 700_000);
    const chunker = { minSize: 64 * 1024, avgSize: 256 * 1024, maxSize: 1024 * 1024 };
    const a = buildBundle([{ path: 'bin/app', data: v1 }], key.privatePem, { name: 'app', version: '1', chunker });
    const b = buildBundle([{ path: 'bin/app', data: v2 }], key.privatePem, { name: 'app', version: '2', chunker });
    const whole = [...b.chunks].filter(([d]) => !a.chunks.has(d)).reduce((s, [, c]) => s + c.length, 0);
    const sk = await startChunkServer(join(dir, 'sketching'), true);
    const sketching = sk.source();
    try {
      for (const [d, c] of [...a.chunks, ...b.chunks]) sk.srv.chunks.set(d, c);
      // The old server of this suite has no Sketch: the source says so instead of failing.
      assert.equal(await source.sketch([sha(v1)], new AbortController().signal), undefined);
      const got = await sketching.sketch([...b.chunks.keys()].slice(0, 2), new AbortController().signal);
      assert.equal(got?.version, SKETCH_VERSION);
      await assert.rejects(sketching.sketch(['e'.repeat(64)], new AbortController().signal), ferryError('CHUNK_NOT_FOUND', `127.0.0.1:${sk.srv.port}`));

      const cache = new BundleCache(join(dir, 'delta-cache'), silentLogger());
      await cache.stage(a.signed, { trustedKeys: [key.publicPem], source: sketching });
      const before = sk.srv.written;
      const r = await cache.stage(b.signed, { trustedKeys: [key.publicPem], source: sketching });
      const { readFile } = await import('node:fs/promises');
      assert.deepEqual(await readFile(join(cache.filesDir(r.bundleId), 'bin/app')), v2);
      assert.equal(sk.srv.written, before, 'no whole chunk fetched');
      assert.ok(r.bytesFetched > 0 && r.bytesFetched < 0.1 * whole, `fetched ${r.bytesFetched} of ${whole} in whole changed chunks`);
    } finally {
      sketching.close();
      sk.srv.server.forceShutdown();
    }
  });
});
