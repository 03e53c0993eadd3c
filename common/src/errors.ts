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
  /** The agent's version is outside what this controller works with (too old, or newer than the controller). */
  AgentVersionRefused: 'AGENT_VERSION_REFUSED',
  /** An agent self-upgrade was not attempted (failed on this host before, no systemd, bad artifact). */
  UpgradeRefused: 'UPGRADE_REFUSED',
  /** An agent self-upgrade was rolled back (the new version crashed, did not connect in time or failed its self-check). */
  UpgradeRolledBack: 'UPGRADE_ROLLED_BACK',
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
  // Step failures on hosts (StepOutcome.errorCode), see agent/src/steps/step-error.ts.
  StepYamlInvalid: 'STEP_YAML_INVALID',
  StepYamlPath: 'STEP_YAML_PATH',
  StepResultInvalid: 'STEP_RESULT_INVALID',
  StepExitCode: 'STEP_EXIT_CODE',
  StepAssertFailed: 'STEP_ASSERT_FAILED',
  StepTemplateInvalid: 'STEP_TEMPLATE_INVALID',
  /** A program the step drives is not installed (or not on PATH). */
  StepToolMissing: 'STEP_TOOL_MISSING',
  /** A program ran and failed; its stderr is in the message. */
  StepCommandFailed: 'STEP_COMMAND_FAILED',
  /** A bundle file or host file the step needs is missing or unusable. */
  StepInputMissing: 'STEP_INPUT_MISSING',
  /** An image tar is damaged or not an image archive. */
  StepImageTarInvalid: 'STEP_IMAGE_TAR_INVALID',
  /** Images were imported but are not listed afterwards with the expected digest. */
  StepImageVerifyFailed: 'STEP_IMAGE_VERIFY_FAILED',
  /** containerd / systemd / the API server cannot be reached. */
  StepServiceUnreachable: 'STEP_SERVICE_UNREACHABLE',
  /** A systemd unit did not become (or stay) active. */
  StepUnitFailed: 'STEP_UNIT_FAILED',
  /** The unit is active but its health check never passed. */
  StepHealthCheckFailed: 'STEP_HEALTH_CHECK_FAILED',
  /** kubectl wait did not see the condition in time. */
  StepWaitFailed: 'STEP_WAIT_FAILED',
  /** A guard (unless/onlyIf) could not run or timed out: the step cannot know whether to run. */
  StepGuard: 'STEP_GUARD',
  /** The step's arguments do not validate on the host. */
  StepInvalidArgs: 'STEP_INVALID_ARGS',
  /** This agent has no executor for the step type. */
  StepUnknownType: 'STEP_UNKNOWN_TYPE',
  /** A controller backup does not open with the passphrase given. */
  BackupPassphrase: 'BACKUP_PASSPHRASE',
  /** A controller backup is truncated, altered or not a backup at all. */
  BackupDamaged: 'BACKUP_DAMAGED',
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
