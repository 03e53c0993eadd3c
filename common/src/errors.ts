/**
 * Ferry's closed set of error codes. Each code is stable: scripts may match on
 * it, and it maps to exactly one gRPC status (see grpc-status.ts).
 */
export const ErrorCode = {
  InvalidArgument: 'INVALID_ARGUMENT',
  NotFound: 'NOT_FOUND',
  AlreadyExists: 'ALREADY_EXISTS',
  TokenMalformed: 'TOKEN_MALFORMED',
  TokenUnknown: 'TOKEN_UNKNOWN',
  TokenExpired: 'TOKEN_EXPIRED',
  TokenRevoked: 'TOKEN_REVOKED',
  TokenExhausted: 'TOKEN_EXHAUSTED',
  CsrInvalid: 'CSR_INVALID',
  IdentityClaimed: 'IDENTITY_CLAIMED',
  Unauthenticated: 'UNAUTHENTICATED',
  PermissionDenied: 'PERMISSION_DENIED',
  AgentRevoked: 'AGENT_REVOKED',
  /** An agent unseen for longer than the re-authentication window: an operator must allow it again. */
  ReauthWindowPassed: 'REAUTH_WINDOW_PASSED',
  CaPinMismatch: 'CA_PIN_MISMATCH',
  Unreachable: 'UNREACHABLE',
  TlsNameMismatch: 'TLS_NAME_MISMATCH',
  ClockSkew: 'CLOCK_SKEW',
  TlsFailed: 'TLS_FAILED',
  NotEnrolled: 'NOT_ENROLLED',
  ResourceExhausted: 'RESOURCE_EXHAUSTED',
  Config: 'CONFIG',
  Unavailable: 'UNAVAILABLE',
  DeadlineExceeded: 'DEADLINE_EXCEEDED',
  Cancelled: 'CANCELLED',
  Internal: 'INTERNAL',
  // Bundles: chunking, chunk store, image tars (see common/src/bundle/errors.ts).
  ChunkerInvalidOptions: 'CHUNKER_INVALID_OPTIONS',
  DigestInvalid: 'DIGEST_INVALID',
  ChunkDigestMismatch: 'CHUNK_DIGEST_MISMATCH',
  ChunkNotFound: 'CHUNK_NOT_FOUND',
  ChunkCorrupt: 'CHUNK_CORRUPT',
  TarTruncated: 'TAR_TRUNCATED',
  TarMalformed: 'TAR_MALFORMED',
  TarPathEscape: 'TAR_PATH_ESCAPE',
  TarLinkEscape: 'TAR_LINK_ESCAPE',
  ImageFormatUnknown: 'IMAGE_FORMAT_UNKNOWN',
  ImageMetadataInvalid: 'IMAGE_METADATA_INVALID',
  ImageBlobDigestMismatch: 'IMAGE_BLOB_DIGEST_MISMATCH',
  ImageBlobMissing: 'IMAGE_BLOB_MISSING',
  SignatureInvalid: 'SIGNATURE_INVALID',
  BundleInvalid: 'BUNDLE_INVALID',
  LintFailed: 'LINT_FAILED',
  DiskFull: 'DISK_FULL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const allCodes = new Set<string>(Object.values(ErrorCode));

/** True when `s` is one of Ferry's error codes. */
export function isErrorCode(s: string): s is ErrorCode {
  return allCodes.has(s);
}

/**
 * The one error type that crosses Ferry's boundaries. `message` says what went
 * wrong and where; `hint` says what the person reading it should do next.
 */
export class FerryError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }

  /** Message and hint, formatted for a person at a terminal. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }
}

/** Wraps anything thrown into a FerryError, keeping FerryErrors as they are. */
export function asFerryError(err: unknown): FerryError {
  if (err instanceof FerryError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // A full disk is the operator's to fix, not a bug: say so wherever it surfaces
  // (a file write, or SQLite failing to grow the store).
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') {
    return new FerryError(ErrorCode.DiskFull, `the disk is full: ${message}`, 'free space on that disk (or raise the quota), then retry; nothing half-written was kept', { cause: err });
  }
  return new FerryError(ErrorCode.Internal, message, undefined, { cause: err });
}
