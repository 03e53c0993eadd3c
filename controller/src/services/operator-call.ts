import type { ControllerContext } from './context.js';
import { CallBoundary } from './call-boundary.js';
import { authenticatePeer, type CallWithAuth } from './peer-auth.js';

/** Who an operator call is from, and handlers of every call kind behind the one error boundary. */
export interface OperatorCalls extends Pick<CallBoundary, 'unary' | 'serverStream' | 'clientStream'> {
  /** The audit name of the caller; throws (UNAUTHENTICATED) when the TLS port is used without an operator certificate. */
  actor(call: CallWithAuth): string;
}

/**
 * The operator APIs' (Admin, Rollouts) shared front door. With
 * `requireOperatorCert` (the TLS port) every call must present an operator
 * certificate; on the local Unix socket the socket's file mode (0600) is
 * the access control, and the caller is "local".
 */
export function operatorCalls(ctx: Pick<ControllerContext, 'ca' | 'log'>, opts: { requireOperatorCert: boolean }, api: string): OperatorCalls {
  const actor = (call: CallWithAuth): string =>
    opts.requireOperatorCert ? `operator:${authenticatePeer(call, ctx.ca, 'operator').id}` : 'local';
  const boundary = new CallBoundary({ api, log: ctx.log, caller: actor });
  return {
    actor,
    unary: boundary.unary.bind(boundary),
    serverStream: boundary.serverStream.bind(boundary),
    clientStream: boundary.clientStream.bind(boundary),
  };
}
