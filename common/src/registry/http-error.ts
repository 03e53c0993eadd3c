/**
 * Errors of the registry listener, in the one shape every client of an OCI
 * registry understands: a 4xx/5xx status and
 * `{"errors":[{"code","message","detail"}]}`, never an HTML page (a mirror
 * answering HTML makes containerd fail with "unexpected media type").
 */
import type { ServerResponse } from 'node:http';

/** Codes of the OCI Distribution spec plus the few the files repository and this server add. */
export type RegistryCode =
  | 'NAME_UNKNOWN' | 'MANIFEST_UNKNOWN' | 'BLOB_UNKNOWN' | 'NAME_INVALID' | 'TAG_INVALID' | 'DIGEST_INVALID'
  | 'UNAUTHORIZED' | 'DENIED' | 'UNSUPPORTED' | 'RANGE_INVALID' | 'NOT_FOUND' | 'PATH_INVALID' | 'PAGINATION_NUMBER_INVALID'
  | 'BLOB_UNAVAILABLE' | 'INTERNAL' | 'HEADERS_TOO_LARGE' | 'BAD_REQUEST' | 'UNAVAILABLE';

/** A refusal with its HTTP status; thrown by handlers, written by {@link sendError}. */
export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly code: RegistryCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The JSON body of an error. */
export function errorBody(code: RegistryCode, message: string): string {
  return JSON.stringify({ errors: [{ code, message, detail: {} }] });
}

/** The headers and JSON body that answer `err`. */
export function errorResponse(err: RegistryError): { status: number; headers: Record<string, string | number>; body: string } {
  const body = errorBody(err.code, err.message);
  return {
    status: err.status,
    headers: {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Docker-Distribution-API-Version': 'registry/2.0',
      ...err.headers,
    },
    body,
  };
}

/** Writes `err` as JSON (the body is left out for HEAD, the length still announced). */
export function sendError(res: ServerResponse, err: RegistryError, head: boolean): void {
  const r = errorResponse(err);
  res.writeHead(r.status, r.headers);
  res.end(head ? undefined : r.body);
}

/** A raw HTTP/1.1 error for a request the parser refused (no ServerResponse exists yet). */
export function rawError(status: number, reason: string, code: RegistryCode, message: string): string {
  const body = errorBody(code, message);
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}
