/**
 * A plain Node peer for the distribution profile: node:http2 over TLS
 * serving the package files (respondWithFile), no gRPC, no protobuf, no
 * hashing, in a process of its own so its CPU is measured alone. The
 * client side lives in stage-probe.ts (`h2fetch`). Together they show what
 * moving the same bytes costs in Node itself, next to what Ferry's
 * Chunks.Fetch costs and what nginx + curl cost.
 */
import { readFileSync } from 'node:fs';
import { createSecureServer, constants } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { serveRpc } from './lib.js';

let close: (() => void) | undefined;

serveRpc({
  async start(args: { root: string; keyPath: string; certPath: string }) {
    const server = createSecureServer({ key: readFileSync(args.keyPath), cert: readFileSync(args.certPath) });
    server.on('stream', (stream, headers) => {
      const p = normalize(decodeURIComponent(String(headers[constants.HTTP2_HEADER_PATH] ?? '/'))).replace(/^(\.\.[/\\])+/, '');
      stream.respondWithFile(join(args.root, p), { 'content-type': 'application/octet-stream' }, {
        onError: () => { stream.respond({ ':status': 404 }); stream.end(); },
      });
    });
    const port = await new Promise<number>((res) => server.listen(0, '127.0.0.1', () => res((server.address() as AddressInfo).port)));
    close = () => server.close();
    return { port, pid: process.pid };
  },
  exit() {
    close?.();
    setTimeout(() => process.exit(0), 50);
    return {};
  },
}, () => process.exit(0));
