import { Metadata } from '@grpc/grpc-js';
import type { FerryError } from './errors.js';
import { fromServiceError } from './grpc-status.js';

/** A generated grpc-js client's unary method, in the form that takes metadata, options and a callback. */
export type UnaryMethod<Req, Res> = (req: Req, md: Metadata, opts: { deadline: number }, cb: (err: unknown, res: Res) => void) => unknown;

/**
 * The client side's one way to make a unary call: with a deadline, and any
 * error turned into a FerryError by the one mapping (grpc-status.ts).
 */
export function unaryCall<Req, Res>(client: object, method: UnaryMethod<Req, Res>, req: Req, timeoutMs: number): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    method.call(client, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) reject(fromServiceError(err) satisfies FerryError);
      else resolve(res);
    });
  });
}
