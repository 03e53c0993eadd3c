/**
 * Plain Node peers for the distribution profile, in a process of their own
 * so their CPU is measured alone, serving the package files over TLS with
 * the nginx peer's certificate and Ferry's cipher order. No Ferry code, no protobuf, no hashing, no
 * disk writes on either side; the clients live in stage-probe.ts.
 *
 * - node:http2 (`h2fetch`): one stream per file, the file read into reused
 *   1 MiB buffers and written to the stream (at most 8 in flight), with
 *   16 MiB HTTP/2 flow-control windows on both sides. Node's 64 KiB default
 *   window, and then respondWithFile (server CPU 2.1–2.5 s/GiB against
 *   1.4–1.6 s/GiB this way, measured by hand), each made this peer
 *   understate Node: see bench-results/bundles.md. This is the "raw HTTP/2
 *   stream" beside Ferry's gRPC.
 * - grpc-js (`grpcfetch`): ONE long server-streaming call carrying every
 *   file as 1 MiB messages (raw bytes: identity serializer), 16 MiB window
 *   on the client channel, read buffers reused once grpc-js has copied a
 *   message into its frame: what gRPC framing itself costs in Node, next to
 *   Ferry's Chunks.Fetch.
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createSecureServer, constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { Server, ServerCredentials, type ServerWritableStream } from '@grpc/grpc-js';
import { serveRpc } from './lib.js';
import { preferFerryCiphers } from '../../common/src/tls-ciphers.js';
import { PEER_GRPC_METHOD, PEER_MESSAGE_BYTES, PEER_WINDOW_BYTES } from './peer-wire.js';


let closers: Array<() => void> = [];

const safe = (root: string, p: string) => join(root, normalize(p).replace(/^(\.\.[/\\])+/, ''));

/** Reads `file` into reused 1 MiB buffers and hands each to `write`, at most 8 in flight (the caller's transport copies or frames it, then calls back). */
async function pumpFile(path: string, free: Buffer[], write: (b: Buffer, done: () => void) => void): Promise<void> {
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const fh = await open(path, 'r');
  try {
    for (let pos = 0; ;) {
      const buf = free.pop() ?? Buffer.allocUnsafe(PEER_MESSAGE_BYTES);
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) { free.push(buf); break; }
      pos += bytesRead;
      inFlight++;
      write(buf.subarray(0, bytesRead), () => { inFlight--; free.push(buf); wake?.(); });
      if (inFlight >= 8) await new Promise<void>((r) => { wake = r; });
      wake = undefined;
    }
  } finally {
    await fh.close();
  }
}

async function streamFiles(root: string, call: ServerWritableStream<Buffer, Buffer>): Promise<void> {
  const free: Buffer[] = [];
  for (const f of call.request.toString('utf8').split('\n').filter(Boolean)) {
    await pumpFile(safe(root, f), free, (b, done) => call.write(b, done));
  }
  call.end();
}

serveRpc({
  async start(args: { root: string; keyPath: string; certPath: string }) {
    const key = readFileSync(args.keyPath);
    const cert = readFileSync(args.certPath);
    preferFerryCiphers(); // the same AES work as Ferry's servers
    // 4 streams × 8 MiB in flight: past Node's 10 MB default session memory the peer refuses streams (ENHANCE_YOUR_CALM).
    const server = createSecureServer({ key, cert, maxSessionMemory: 64, settings: { initialWindowSize: PEER_WINDOW_BYTES } });
    server.on('session', (s) => s.setLocalWindowSize(PEER_WINDOW_BYTES));
    server.on('stream', (stream, headers) => {
      const p = safe(args.root, decodeURIComponent(String(headers[constants.HTTP2_HEADER_PATH] ?? '/')));
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
      pumpFile(p, [], (b, done) => stream.write(b, done)).then(() => stream.end(), (e: Error) => stream.destroy(e));
    });
    const port = await new Promise<number>((res) => server.listen(0, '127.0.0.1', () => res((server.address() as AddressInfo).port)));
    const grpc = new Server({ 'grpc.max_send_message_length': 2 * PEER_MESSAGE_BYTES });
    const id = (b: Buffer) => b;
    grpc.register<Buffer, Buffer>(PEER_GRPC_METHOD, (call: ServerWritableStream<Buffer, Buffer>) => {
      streamFiles(args.root, call).catch((e: Error) => call.destroy(e));
    }, id, id, 'serverStream');
    const grpcPort = await new Promise<number>((res, rej) => grpc.bindAsync('127.0.0.1:0', ServerCredentials.createSsl(null, [{ private_key: key, cert_chain: cert }], false),
      (e, p) => (e ? rej(e) : res(p))));
    closers = [() => server.close(), () => grpc.forceShutdown()];
    return { port, grpcPort, pid: process.pid };
  },
  exit() {
    for (const c of closers) c();
    setTimeout(() => process.exit(0), 50);
    return {};
  },
}, () => process.exit(0));
