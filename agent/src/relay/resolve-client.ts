/**
 * The relay's client for Chunks.ResolveHttp on the controller
 * (relay-registry.ts): one channel, made again when the controller address
 * or this agent's certificate changes (a failover, a renewal), so a request
 * is always asked with the identity the controller knows now.
 */
import { Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import { ChunksClient, type ResolveHttpRequest, type ResolveHttpResponse } from '../../../common/src/gen/ferry/v1/chunks.js';
import { clientChannelOptions } from '../../../common/src/grpc-options.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';

/** How long one request may wait for the controller's answer. */
const RESOLVE_DEADLINE_MS = 30_000;

/** See module comment. */
export class ResolveClient {
  private current: { key: string; client: ChunksClient } | undefined;

  /** `target` gives the controller's address and credentials now, and a key that changes with either. */
  constructor(private readonly target: () => { address: string; creds: ChannelCredentials; key: string }) {}

  resolve(req: ResolveHttpRequest): Promise<ResolveHttpResponse> {
    const t = this.target();
    if (this.current?.key !== t.key) {
      this.current?.client.close();
      this.current = { key: t.key, client: new ChunksClient(t.address, t.creds, clientChannelOptions({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 })) };
    }
    const client = this.current.client;
    return new Promise((resolve, reject) =>
      client.resolveHttp(req, new Metadata(), { deadline: Date.now() + RESOLVE_DEADLINE_MS }, (e, res) => (e ? reject(fromServiceError(e)) : resolve(res))));
  }

  close(): void {
    this.current?.client.close();
    this.current = undefined;
  }
}
