/** What every registry and files handler gets for one request. */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Logger } from '../../../common/src/log.js';
import type { RegistryMetrics } from '../metrics/metrics.js';
import type { BundleBytes, IndexedBundleFile } from './bundle-bytes.js';
import type { Client } from './client-auth.js';
import type { RegistryStore } from './registry-store.js';

/** Shared by all requests: the store, the bundles' files, and where pulls are counted (/metrics). */
export interface RegistryDeps {
  store: RegistryStore;
  bytes: BundleBytes;
  metrics: RegistryMetrics;
  log: Logger;
}

/**
 * Where an answer goes: the client's socket (this controller's listener),
 * or a site relay's ResolveHttp call, which sends the body itself from its
 * chunk cache (resolve-http.ts). Handlers write through this alone, so both
 * get the same decisions.
 */
export interface RegistryReply {
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  end(body?: string | Buffer): unknown;
}

/** One request: parsed URL, whether it is HEAD, and the verified client. */
export interface RegistryRequest {
  /** The request headers (lowercase names). */
  headers: IncomingHttpHeaders;
  res: RegistryReply;
  /**
   * Sends bytes [start, end] (inclusive) of bundle file `f`, calling
   * `writeHead` before the first byte; resolves with the bytes sent.
   */
  sendRange(bundleId: string, f: IndexedBundleFile, start: number, end: number, writeHead: () => void): Promise<number>;
  /** The path as sent, without the query. */
  path: string;
  query: URLSearchParams;
  head: boolean;
  /** The Host header. */
  host: string | undefined;
  client: Client;
}
