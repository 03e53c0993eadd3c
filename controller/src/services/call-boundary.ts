import { status as grpcStatus } from '@grpc/grpc-js';
import type {
  handleBidiStreamingCall, handleClientStreamingCall, handleServerStreamingCall, handleUnaryCall,
  ServerDuplexStream, ServerReadableStream, ServerWritableStream,
} from '@grpc/grpc-js';
import { asFerryError, ErrorCode, FerryError } from '../../../common/src/errors.js';
import { toServiceError } from '../../../common/src/grpc-status.js';
import type { Logger } from '../../../common/src/log.js';
import type { CallMetrics, CallType } from '../metrics/metrics.js';
import type { CallWithAuth } from './peer-auth.js';

/** What every handler gets besides its request: who called, from where, and whether they are still there. */
export interface CallScope {
  /** The caller's name for the audit log and error lines (operator:alice, local, agent:ag-…, or the peer address). */
  who: string;
  peer: string;
  /** Aborted when the caller cancels or goes away; handlers stop work and writes on it. */
  signal: AbortSignal;
  /** The caller's deadline in epoch ms (Infinity when it set none). */
  deadline: number;
}

export interface BoundaryOptions {
  /** Service name for log lines (admin, rollouts, chunks, enrollment, session). */
  api: string;
  log: Logger;
  /**
   * The caller check, run before any handler, with the method's full path
   * (/ferry.v1.Admin/CreateToken): returns the caller's name, or throws
   * (UNAUTHENTICATED, PERMISSION_DENIED). It may ask the store (async).
   */
  caller: (call: CallWithAuth, method: string) => string | Promise<string>;
  /**
   * How often a streaming call's caller is checked again while the stream is
   * open (undefined: only at the start). A check that fails then ends the call
   * with its error, as if refused at the start: a revoked operator's open
   * `exec` or `rollout watch` ends within this time, on every replica.
   */
  recheckMs?: number;
  /** Told of every call's end: its method, kind, status and time (the controller's /metrics). */
  metrics: CallMetrics;
  /** Log fields naming a caller the check refused (e.g. the agent id an expired certificate names); never used for access. */
  refusedCaller?: (call: CallWithAuth) => Record<string, unknown>;
}

/** Refusals worth a warning: someone is knocking with the wrong credentials. */
const SECURITY_CODES = new Set<string>([ErrorCode.Unauthenticated, ErrorCode.PermissionDenied, ErrorCode.AgentRevoked, ErrorCode.IdentityClaimed]);

type AnyCall = CallWithAuth & { getPath(): string; getDeadline(): Date | number; on(event: 'cancelled' | 'close', fn: () => void): unknown; cancelled?: boolean };

/**
 * The controller's one error boundary, for every kind of call: the caller
 * check comes first; cancellation and disconnects abort the handler's
 * signal; every error leaves as a Ferry code with its hint (one mapping,
 * common/src/grpc-status.ts); an unexpected error is logged with who
 * called and which method, and the caller sees only "internal error".
 */
export class CallBoundary {
  constructor(private readonly o: BoundaryOptions) {}

  unary<Req, Res>(fn: (req: Req, who: string, scope: CallScope) => Promise<Res>): handleUnaryCall<Req, Res> {
    return (call, cb) => {
      const method = call.getPath();
      const done = this.timer(method, 'unary');
      void this.enter(method, call as unknown as AnyCall, (err) => { done(err.code); cb(err); }).then((scope) => {
        if (!scope) return;
        fn(call.request, scope.who, scope).then(
          (res) => { done(grpcStatus.OK); cb(null, res); },
          (err: unknown) => { const se = this.report(method, scope, err); done(se.code); cb(se); });
      });
    };
  }

  /** A server stream: the call ends when `fn` resolves (unless the caller left first). */
  serverStream<Req, Res>(fn: (call: ServerWritableStream<Req, Res>, scope: CallScope) => Promise<void>): handleServerStreamingCall<Req, Res> {
    return (call) => this.stream(call, 'server_stream', fn);
  }

  /** A client stream: `fn` reads the stream and returns the one response. */
  clientStream<Req, Res>(fn: (call: ServerReadableStream<Req, Res>, scope: CallScope) => Promise<Res>): handleClientStreamingCall<Req, Res> {
    return (call, cb) => {
      const method = call.getPath();
      const done = this.timer(method, 'client_stream');
      void this.enter(method, call as unknown as AnyCall, (err) => { done(err.code); cb(err); }).then((scope) => {
        if (!scope) return;
        fn(call, scope).then(
          (res) => { done(grpcStatus.OK); cb(null, res); },
          (err: unknown) => { const se = this.report(method, scope, err); done(se.code); cb(se); });
      });
    };
  }

  /** A bidirectional stream: `fn` resolves when the conversation is over, and the call is ended then. */
  bidi<Req, Res>(fn: (call: ServerDuplexStream<Req, Res>, scope: CallScope) => Promise<void>): handleBidiStreamingCall<Req, Res> {
    return (call) => this.stream(call, 'bidi_stream', fn);
  }

  /** Both kinds of call that write a stream back: ended when `fn` resolves, or ended with its error. */
  private stream<C extends ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>>(call: C, type: CallType, fn: (call: C, scope: CallScope) => Promise<void>): void {
    const method = call.getPath();
    const done = this.timer(method, type);
    void this.enter(method, call as unknown as AnyCall, (err) => { done(err.code); call.emit('error', err); }).then((scope) => {
      if (!scope) return;
      const stopRecheck = this.recheck(method, call, scope);
      fn(call, scope).then(
        // A handler that owns its stream may have ended it already (a session closing itself).
        () => {
          stopRecheck();
          done(scope.signal.aborted ? grpcStatus.CANCELLED : grpcStatus.OK);
          if (!scope.signal.aborted && !call.writableEnded) call.end();
        },
        (err: unknown) => {
          stopRecheck();
          const se = this.report(method, scope, err);
          done(scope.signal.aborted ? grpcStatus.CANCELLED : se.code);
          if (!scope.signal.aborted && !call.writableEnded) call.emit('error', se);
        },
      );
    });
  }

  /** Starts a call's clock; the returned function reports its end once, with the gRPC status it ended with. */
  private timer(method: string, type: CallType): (code: grpcStatus | undefined) => void {
    const t0 = process.hrtime.bigint();
    let reported = false;
    return (code) => {
      if (reported) return;
      reported = true;
      const name = grpcStatus[code ?? grpcStatus.UNKNOWN] ?? 'UNKNOWN';
      this.o.metrics.callFinished(method, type, name, Number(process.hrtime.bigint() - t0) / 1e9);
    };
  }

  /**
   * Checks the caller again every `recheckMs` while the stream is open; when
   * the check fails, the caller gets its error and the handler's signal is
   * aborted (it stops as if the caller had left). Returns the stop function.
   */
  private recheck(method: string, call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>, scope: CallScope & { abort?: AbortController }): () => void {
    if (!this.o.recheckMs) return () => undefined;
    const timer = setInterval(() => {
      void Promise.resolve().then(() => this.o.caller(call as unknown as CallWithAuth, method)).catch((err: unknown) => {
        clearInterval(timer);
        if (scope.signal.aborted || call.writableEnded) return;
        call.emit('error', this.report(method, scope, err));
        scope.abort?.abort(asFerryError(err));
      });
    }, this.o.recheckMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * Runs the caller check and wires cancellation; undefined when the caller
   * was refused (already answered). Cancellation is watched from the start,
   * so a caller that leaves while its check is asking the store is noticed.
   */
  private async enter(method: string, call: AnyCall, refuse: (err: ReturnType<typeof toServiceError>) => void): Promise<(CallScope & { abort: AbortController }) | undefined> {
    const peer = call.getPeer();
    let who = peer;
    const abort = new AbortController();
    const gone = () => { if (!abort.signal.aborted) abort.abort(new FerryError(ErrorCode.Cancelled, `the caller ${who} went away`)); };
    call.on('cancelled', gone);
    if (call.cancelled) gone();
    try {
      who = await this.o.caller(call, method);
    } catch (err) {
      refuse(this.report(method, { who: peer, peer, signal: new AbortController().signal, deadline: 0 }, err, this.o.refusedCaller?.(call)));
      return undefined;
    }
    const d = call.getDeadline();
    const deadline = d instanceof Date ? d.getTime() : Number.isFinite(d) ? Number(d) : Number.POSITIVE_INFINITY;
    return { who, peer, signal: abort.signal, deadline, abort };
  }

  /** Logs what the operator of the controller needs to see, and maps the error for the caller. */
  private report(method: string, scope: CallScope, err: unknown, claimed: Record<string, unknown> = {}): ReturnType<typeof toServiceError> {
    const fe = asFerryError(err);
    const where = { method, who: scope.who, peer: scope.peer, ...claimed };
    if (!(err instanceof FerryError) && fe.code === ErrorCode.Internal) {
      this.o.log.error({ ...where, err }, `${this.o.api} call failed unexpectedly`);
    } else if (SECURITY_CODES.has(fe.code)) {
      this.o.log.warn({ ...where, code: fe.code, err: fe.message }, `${this.o.api} call refused`);
    } else if (!scope.signal.aborted) {
      this.o.log.debug({ ...where, code: fe.code, err: fe.message }, `${this.o.api} call ended with an error`);
    }
    return toServiceError(err);
  }
}
