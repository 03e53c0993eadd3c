import { credentials } from '@grpc/grpc-js';
import type { FerryError } from '../../../common/src/errors.js';
import { unaryCall, type UnaryMethod } from '../../../common/src/grpc-call.js';
import { RolloutsClient } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import type { Admin } from './admin-client.js';

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

  call<Req, Res>(method: UnaryMethod<Req, Res>, req: Req, timeoutMs = 30_000): Promise<Res> {
    return unaryCall(this.client, method, req, timeoutMs).catch((e: FerryError) => { throw this.admin.explain(e); });
  }
}
