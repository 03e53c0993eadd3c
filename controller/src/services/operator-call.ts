import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import { FerryError } from '../../../common/src/errors.js';
import { toServiceError } from '../../../common/src/grpc-status.js';
import type { ControllerContext } from './context.js';
import { authenticatePeer, type CallWithAuth } from './peer-auth.js';

/** Who an operator call is from, and unary handlers that check it first. */
export interface OperatorCalls {
  /** The audit name of the caller; throws (UNAUTHENTICATED) when the TLS port is used without an operator certificate. */
  actor(call: CallWithAuth): string;
  /** A unary handler: caller checked, `fn` run with it, errors through the one error boundary (unexpected ones logged). */
  unary<Req, Res>(fn: (req: Req, who: string) => Promise<Res>): (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => void;
}

/**
 * The operator APIs' (Admin, Rollouts) shared front door. With
 * `requireOperatorCert` (the TLS port) every call must present an operator
 * certificate; on the local Unix socket the socket's file mode (0600) is
 * the access control, and the caller is "local".
 */
export function operatorCalls(ctx: ControllerContext, opts: { requireOperatorCert: boolean }, api: string): OperatorCalls {
  const actor = (call: CallWithAuth): string =>
    opts.requireOperatorCert ? `operator:${authenticatePeer(call, ctx.ca, 'operator').id}` : 'local';
  function unary<Req, Res>(fn: (req: Req, who: string) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      let who: string;
      try {
        who = actor(call);
      } catch (err) {
        cb(toServiceError(err));
        return;
      }
      fn(call.request, who).then((res) => cb(null, res), (err: unknown) => {
        if (!(err instanceof FerryError)) ctx.log.error({ err }, `${api} call failed`);
        cb(toServiceError(err));
      });
    };
  }
  return { actor, unary };
}
