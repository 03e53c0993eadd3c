/** What every registry and files handler gets for one request. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../common/src/log.js';
import type { BundleBytes } from './bundle-bytes.js';
import type { Client } from './client-auth.js';
import type { PullCounters } from './pull-counters.js';
import type { RegistryStore } from './registry-store.js';

/** Shared by all requests: the store, the byte server, counters. */
export interface RegistryDeps {
  store: RegistryStore;
  bytes: BundleBytes;
  counters: PullCounters;
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
  client: Client;
}
