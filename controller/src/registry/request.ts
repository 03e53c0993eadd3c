/** What every registry and files handler gets for one request. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../common/src/log.js';
import type { RegistryMetrics } from '../metrics/metrics.js';
import type { BundleBytes } from './bundle-bytes.js';
import type { Client } from './client-auth.js';
import type { RegistryStore } from './registry-store.js';

/** Shared by all requests: the store, the byte server, and where pulls are counted (/metrics). */
export interface RegistryDeps {
  store: RegistryStore;
  bytes: BundleBytes;
  metrics: RegistryMetrics;
  log: Logger;
}

/** One request: parsed URL, whether it is HEAD, and the verified client. */
export interface RegistryRequest {
  req: IncomingMessage;
  res: ServerResponse;
  /** The path as sent, without the query. */
  path: string;
  query: URLSearchParams;
  head: boolean;
  /** The Host header. */
  host: string | undefined;
  client: Client;
}
