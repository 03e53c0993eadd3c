import { EventEmitter } from 'node:events';
import { Metadata, type handleServerStreamingCall, type handleUnaryCall } from '@grpc/grpc-js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import type { OperatorRole } from '../store/operators.js';
import type { CallWithAuth } from '../services/peer-auth.js';

/** A browser's caller, as the console proved it (session cookie or operator certificate). */
export interface ConsoleCaller {
  operator: string;
  role: OperatorRole;
  /** The browser's address, for the boundary's log lines. */
  peer: string;
  /** Checks again that the caller may still act (session not ended, certificate not revoked); throws UNAUTHENTICATED. */
  recheck(): Promise<void>;
}

const CALLER = Symbol('ferry.console.caller');

type InProcessCall = EventEmitter & CallWithAuth & Record<string | symbol, unknown>;

/**
 * The shape of a grpc-js server call, made in-process: the console calls
 * the very handlers the gRPC servers run (Admin, Rollouts), so the same
 * boundary checks the role against METHOD_ACCESS, maps errors and audits
 * changes with the caller's name; nothing of that is written twice.
 */
function inProcessCall(path: string, request: unknown, caller: ConsoleCaller): InProcessCall {
  const call = new EventEmitter() as InProcessCall;
  Object.assign(call, {
    request, metadata: new Metadata(), cancelled: false,
    getPath: () => path, getPeer: () => `console ${caller.peer}`, getDeadline: () => Number.POSITIVE_INFINITY,
    getAuthContext: () => ({}), [CALLER]: caller,
  });
  return call;
}

/** The console caller an in-process call carries; UNAUTHENTICATED for any other call. */
export async function consoleIdentity(call: CallWithAuth): Promise<{ who: string; role: OperatorRole }> {
  const c = (call as unknown as Record<symbol, ConsoleCaller | undefined>)[CALLER];
  if (!c) throw new FerryError(ErrorCode.Unauthenticated, 'not a console call');
  await c.recheck();
  return { who: `operator:${c.operator} (console)`, role: c.role };
}

/** One unary call of a service handler, with its error turned back into a FerryError. */
export function callUnary<Req, Res>(def: { path: string }, handler: handleUnaryCall<Req, Res>, request: Req, caller: ConsoleCaller): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const call = inProcessCall(def.path, request, caller);
    handler(call as never, (err, res) => (err ? reject(fromServiceError(err)) : resolve(res as Res)));
  });
}

/** An open server stream: `done` settles when the handler ends it (or with its error); `cancel` is the caller leaving. */
export interface InProcessStream {
  done: Promise<void>;
  cancel(): void;
}

/** One server-streaming call of a service handler; every message goes to `onData`. */
export function callStream<Req, Res>(def: { path: string }, handler: handleServerStreamingCall<Req, Res>, request: Req, caller: ConsoleCaller, onData: (m: Res) => void): InProcessStream {
  const call = inProcessCall(def.path, request, caller);
  let settle!: (err?: FerryError) => void;
  const done = new Promise<void>((resolve, reject) => { settle = (err) => (err ? reject(err) : resolve()); });
  Object.assign(call, {
    writableEnded: false,
    write: (m: Res) => { if (!call['writableEnded']) onData(m); return true; },
    end: () => { call['writableEnded'] = true; settle(); },
  });
  call.on('error', (err: unknown) => { call['writableEnded'] = true; settle(fromServiceError(err)); });
  handler(call as never);
  return {
    done,
    cancel: () => {
      if (call['cancelled']) return;
      call['cancelled'] = true;
      call['writableEnded'] = true;
      call.emit('cancelled');
      settle();
    },
  };
}
