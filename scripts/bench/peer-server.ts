/**
 * The reference server for the foundation benchmark: plain Node HTTPS and
 * HTTP/2 (mTLS) servers with the controller's own server certificate and CA,
 * in a process of their own so their memory is measured alone. No gRPC, no
 * Ferry code: what Node itself costs for the same handshakes and idle
 * connections. Started with --expose-gc.
 */
import { createSecureServer, type ServerHttp2Stream } from 'node:http2';
import { createServer } from 'node:https';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { getHeapStatistics } from 'node:v8';
import { procMem, serveRpc, sleep } from './lib.js';

const gc = (globalThis as { gc?: () => void }).gc;
const held = new Set<ServerHttp2Stream>();
const heldTls = new Set<TLSSocket>();
let closeAll: (() => void) | undefined;

serveRpc({
  async start(args: { certChainPem: string; keyPem: string; caPem: string; replyBytes: number }) {
    const reply = Buffer.alloc(args.replyBytes, 'y');
    const https = createServer({ key: args.keyPem, cert: args.certChainPem }, (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': reply.length });
        res.end(reply);
      });
    });
    const h2 = createSecureServer({ key: args.keyPem, cert: args.certChainPem, ca: args.caPem, requestCert: true, rejectUnauthorized: true });
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      held.add(stream);
      stream.on('close', () => held.delete(stream));
    });
    const tls = createTlsServer({ key: args.keyPem, cert: args.certChainPem, ca: args.caPem, requestCert: true, rejectUnauthorized: true }, (sock) => {
      heldTls.add(sock);
      // Like a session: read what the client says, answer once, then stay idle.
      sock.once('data', () => sock.write('k'));
      sock.on('close', () => heldTls.delete(sock));
      sock.on('error', () => sock.destroy());
    });
    const listen = (s: typeof https | typeof h2 | typeof tls) => new Promise<number>((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
    const [httpsPort, h2Port, tlsPort] = [await listen(https), await listen(h2), await listen(tls)];
    closeAll = () => { https.close(); h2.close(); tls.close(); };
    return { httpsPort, h2Port, tlsPort };
  },

  async mem(args: { gc?: boolean }) {
    if (args.gc && gc) for (let i = 0; i < 2; i++) { gc(); await sleep(50); }
    const mu = process.memoryUsage();
    return {
      proc: procMem(process.pid), rss: mu.rss, heapUsed: mu.heapUsed, external: mu.external,
      arrayBuffers: mu.arrayBuffers, mallocedMemory: getHeapStatistics().malloced_memory, heldStreams: held.size, heldTls: heldTls.size,
    };
  },

  async exit() {
    closeAll?.();
    setTimeout(() => process.exit(0), 50);
    return {};
  },
}, () => process.exit(0));
