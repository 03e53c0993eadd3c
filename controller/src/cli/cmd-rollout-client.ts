import { credentials, Metadata } from '@grpc/grpc-js';
import { RolloutsClient } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import type { Admin } from './admin-client.js';

type Unary<Req, Res> = (req: Req, md: Metadata, opts: { deadline: number }, cb: (err: unknown, res: Res) => void) => unknown;

/**
 * The Rollouts API over the admin connection's channel (same socket or TLS
 * connection, same operator certificate).
 */
export class Rollouts {
  readonly client: RolloutsClient;

  constructor(private readonly admin: Admin) {
    // The credentials argument is required but unused: the channel is the admin one.
    this.client = new RolloutsClient('unused', credentials.createInsecure(), { channelOverride: admin.client.getChannel() });
  }

  /** A stream's error, through the one error boundary. */
  explain(err: unknown): Error {
    return this.admin.explain(fromServiceError(err));
  }

  call<Req, Res>(method: Unary<Req, Res>, req: Req, timeoutMs = 30_000): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(this.client, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(this.admin.explain(fromServiceError(err)));
        else resolve(res);
      });
    });
  }
}
