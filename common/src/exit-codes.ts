import { ErrorCode, type FerryError } from './errors.js';

/**
 * Exit codes shared by `ferry` and `ferry-agent`, so scripts and systemd can
 * tell outcomes apart. Documented in the README.
 */
export const Exit = {
  Ok: 0,
  Failure: 1,
  Usage: 2,
  NotEnrolled: 3,
  Revoked: 4,
  Unreachable: 5,
  TokenRefused: 6,
  Untrusted: 7,
} as const;

export function exitCodeFor(err: FerryError): number {
  switch (err.code) {
    case ErrorCode.InvalidArgument:
    case ErrorCode.Config:
      return Exit.Usage;
    case ErrorCode.NotEnrolled:
      return Exit.NotEnrolled;
    case ErrorCode.AgentRevoked:
    case ErrorCode.ReauthWindowPassed:
      return Exit.Revoked;
    case ErrorCode.Unreachable:
    case ErrorCode.Unavailable:
    case ErrorCode.TlsFailed:
    case ErrorCode.TlsNameMismatch:
    case ErrorCode.ClockSkew:
    case ErrorCode.DeadlineExceeded:
      return Exit.Unreachable;
    case ErrorCode.TokenMalformed:
    case ErrorCode.TokenUnknown:
    case ErrorCode.TokenExpired:
    case ErrorCode.TokenRevoked:
    case ErrorCode.TokenExhausted:
      return Exit.TokenRefused;
    case ErrorCode.CaPinMismatch:
      return Exit.Untrusted;
    default:
      return Exit.Failure;
  }
}
