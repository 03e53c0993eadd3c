import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { asFerryError, ErrorCode, FerryError, isErrorCode } from './errors.js';

/**
 * The single boundary between FerryError and gRPC statuses, used by both the
 * controller (to send) and the agent and CLI (to receive). The Ferry code and
 * hint travel in trailing metadata, so clients other than Ferry's still see a
 * meaningful standard status.
 */
const toStatus: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  TOKEN_MALFORMED: status.INVALID_ARGUMENT,
  TOKEN_UNKNOWN: status.UNAUTHENTICATED,
  TOKEN_EXPIRED: status.UNAUTHENTICATED,
  TOKEN_REVOKED: status.UNAUTHENTICATED,
  TOKEN_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  CSR_INVALID: status.INVALID_ARGUMENT,
  IDENTITY_CLAIMED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  AGENT_REVOKED: status.PERMISSION_DENIED,
  REAUTH_WINDOW_PASSED: status.PERMISSION_DENIED,
  AGENT_VERSION_REFUSED: status.FAILED_PRECONDITION,
  UPGRADE_REFUSED: status.FAILED_PRECONDITION,
  UPGRADE_ROLLED_BACK: status.FAILED_PRECONDITION,
  CA_PIN_MISMATCH: status.UNAUTHENTICATED,
  UNREACHABLE: status.UNAVAILABLE,
  TLS_NAME_MISMATCH: status.UNAVAILABLE,
  CLOCK_SKEW: status.UNAVAILABLE,
  TLS_FAILED: status.UNAVAILABLE,
  NOT_ENROLLED: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  CONFIG: status.INVALID_ARGUMENT,
  UNAVAILABLE: status.UNAVAILABLE,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
  INTERNAL: status.INTERNAL,
  CHUNKER_INVALID_OPTIONS: status.INVALID_ARGUMENT,
  DIGEST_INVALID: status.INVALID_ARGUMENT,
  CHUNK_DIGEST_MISMATCH: status.DATA_LOSS,
  CHUNK_NOT_FOUND: status.NOT_FOUND,
  CHUNK_CORRUPT: status.DATA_LOSS,
  TAR_TRUNCATED: status.INVALID_ARGUMENT,
  TAR_MALFORMED: status.INVALID_ARGUMENT,
  TAR_PATH_ESCAPE: status.INVALID_ARGUMENT,
  TAR_LINK_ESCAPE: status.INVALID_ARGUMENT,
  IMAGE_FORMAT_UNKNOWN: status.INVALID_ARGUMENT,
  IMAGE_METADATA_INVALID: status.INVALID_ARGUMENT,
  IMAGE_BLOB_DIGEST_MISMATCH: status.INVALID_ARGUMENT,
  IMAGE_BLOB_MISSING: status.INVALID_ARGUMENT,
  SIGNATURE_INVALID: status.PERMISSION_DENIED,
  BUNDLE_INVALID: status.INVALID_ARGUMENT,
  LINT_FAILED: status.FAILED_PRECONDITION,
  DISK_FULL: status.RESOURCE_EXHAUSTED,
  STEP_YAML_INVALID: status.FAILED_PRECONDITION,
  STEP_YAML_PATH: status.FAILED_PRECONDITION,
  STEP_RESULT_INVALID: status.FAILED_PRECONDITION,
  STEP_EXIT_CODE: status.FAILED_PRECONDITION,
  STEP_ASSERT_FAILED: status.FAILED_PRECONDITION,
  STEP_TEMPLATE_INVALID: status.FAILED_PRECONDITION,
  STEP_TOOL_MISSING: status.FAILED_PRECONDITION,
  STEP_COMMAND_FAILED: status.FAILED_PRECONDITION,
  STEP_INPUT_MISSING: status.FAILED_PRECONDITION,
  STEP_IMAGE_TAR_INVALID: status.FAILED_PRECONDITION,
  STEP_IMAGE_VERIFY_FAILED: status.FAILED_PRECONDITION,
  STEP_SERVICE_UNREACHABLE: status.FAILED_PRECONDITION,
  STEP_UNIT_FAILED: status.FAILED_PRECONDITION,
  STEP_HEALTH_CHECK_FAILED: status.FAILED_PRECONDITION,
  STEP_WAIT_FAILED: status.FAILED_PRECONDITION,
  STEP_GUARD: status.FAILED_PRECONDITION,
  STEP_INVALID_ARGS: status.FAILED_PRECONDITION,
  STEP_UNKNOWN_TYPE: status.FAILED_PRECONDITION,
  BACKUP_PASSPHRASE: status.UNAUTHENTICATED,
  BACKUP_DAMAGED: status.DATA_LOSS,
};

const fromStatus: Partial<Record<status, ErrorCode>> = {
  [status.INVALID_ARGUMENT]: ErrorCode.InvalidArgument,
  [status.NOT_FOUND]: ErrorCode.NotFound,
  [status.ALREADY_EXISTS]: ErrorCode.AlreadyExists,
  [status.UNAUTHENTICATED]: ErrorCode.Unauthenticated,
  [status.PERMISSION_DENIED]: ErrorCode.PermissionDenied,
  [status.RESOURCE_EXHAUSTED]: ErrorCode.ResourceExhausted,
  [status.UNAVAILABLE]: ErrorCode.Unavailable,
  [status.DEADLINE_EXCEEDED]: ErrorCode.DeadlineExceeded,
  [status.CANCELLED]: ErrorCode.Cancelled,
};

/** Turns any error into the ServiceError a grpc-js handler passes to its callback. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  // Errors that are not Ferry's own become a generic internal error (details
  // stay in the log), except conditions the operator must act on (a full disk).
  const known = asFerryError(err);
  const fe = err instanceof FerryError || known.code !== ErrorCode.Internal
    ? known
    : new FerryError(ErrorCode.Internal, 'internal error in the controller; see its log');
  const metadata = new Metadata();
  metadata.set('ferry-code', fe.code);
  if (fe.hint) metadata.set('ferry-hint', encodeURIComponent(fe.hint));
  return { code: toStatus[fe.code], details: fe.message, metadata };
}

/** Turns an error from a grpc-js client call back into a FerryError. */
export function fromServiceError(err: unknown): FerryError {
  if (err instanceof FerryError) return err;
  const se = err as Partial<ServiceError>;
  if (typeof se?.code !== 'number') {
    return new FerryError(ErrorCode.Internal, err instanceof Error ? err.message : String(err));
  }
  const codeMeta = se.metadata?.get('ferry-code')[0];
  const hintMeta = se.metadata?.get('ferry-hint')[0];
  const code =
    typeof codeMeta === 'string' && isErrorCode(codeMeta)
      ? codeMeta
      : (fromStatus[se.code] ?? ErrorCode.Internal);
  const hint = typeof hintMeta === 'string' ? decodeURIComponent(hintMeta) : undefined;
  return new FerryError(code, se.details || se.message || 'unknown error', hint, { cause: err });
}
