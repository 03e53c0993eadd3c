/**
 * Failures of the system-level step executors (systemd, iptables, ctr, kubectl) and how
 * they become a {@link StepOutcome}. Every message says what failed, where, and what to do
 * next; long evidence (systemctl status, journal, a tool's stderr) follows on later lines.
 */
import { FerryError } from '../../../../common/src/errors.js';
import type { StepOutcome } from '../../../../common/src/plan/types.js';

/** Stable error codes these executors report (StepOutcome.errorCode). */
export const StepCode = {
  /** A program the step drives is not installed (or not on PATH). */
  ToolMissing: 'STEP_TOOL_MISSING',
  /** A program ran and failed; its stderr is in the message. */
  CommandFailed: 'STEP_COMMAND_FAILED',
  /** A bundle file or host file the step needs is missing or unusable. */
  InputMissing: 'STEP_INPUT_MISSING',
  /** An image tar is damaged or not an image archive. */
  ImageTarInvalid: 'STEP_IMAGE_TAR_INVALID',
  /** Images were imported but are not listed afterwards with the expected digest. */
  ImageVerifyFailed: 'STEP_IMAGE_VERIFY_FAILED',
  /** containerd / systemd / the API server cannot be reached. */
  ServiceUnreachable: 'STEP_SERVICE_UNREACHABLE',
  /** A systemd unit did not become (or stay) active. */
  UnitFailed: 'STEP_UNIT_FAILED',
  /** The unit is active but its health check never passed. */
  HealthCheckFailed: 'STEP_HEALTH_CHECK_FAILED',
  /** kubectl wait did not see the condition in time. */
  WaitFailed: 'STEP_WAIT_FAILED',
  Cancelled: 'CANCELLED',
  Internal: 'INTERNAL',
} as const;

/** A step failure with a stable code, a next-step hint and optional evidence lines. */
export class StepError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    /** Multi-line evidence (stderr, status, journal) appended after the first line. */
    readonly details?: string,
  ) {
    super(message);
    this.name = 'StepError';
  }
}

/** Formats message, hint and details into the outcome's text: the first line is the summary. */
export function describeFailure(message: string, hint?: string, details?: string): string {
  let text = hint ? `${message}. Next: ${hint}` : message;
  if (details && details.trim()) text += `\n${details.trimEnd()}`;
  return text;
}

/** Turns anything thrown inside an executor into a failed outcome. */
export function failureOutcome(err: unknown, signal?: AbortSignal, diff?: string): StepOutcome {
  const extra = diff ? { diff } : {};
  if (err instanceof StepError) {
    return { status: 'failed', message: describeFailure(err.message, err.hint, err.details), errorCode: err.code, ...extra };
  }
  if (err instanceof FerryError) return { status: 'failed', message: err.describe(), errorCode: err.code, ...extra };
  if (signal?.aborted) return { status: 'failed', message: `cancelled: ${reasonText(signal.reason)}`, errorCode: StepCode.Cancelled, ...extra };
  const msg = err instanceof Error ? err.message : String(err);
  return { status: 'failed', message: `internal error: ${msg}`, errorCode: StepCode.Internal, ...extra };
}

/** Runs an executor body and converts what it throws (see {@link failureOutcome}). */
export async function guarded(signal: AbortSignal, body: () => Promise<StepOutcome>): Promise<StepOutcome> {
  try {
    return await body();
  } catch (err) {
    return failureOutcome(err, signal);
  }
}

/** Throws a Cancelled StepError when the step was cancelled or timed out. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new StepError(StepCode.Cancelled, `cancelled: ${reasonText(signal.reason)}`);
}

function reasonText(reason: unknown): string {
  if (reason instanceof Error) return reason.name === 'TimeoutError' ? 'step timeout reached' : reason.message;
  return reason === undefined ? 'aborted' : String(reason);
}

/** Indents evidence under a header, e.g. "--- journalctl -u x -n 30 ---". */
export function section(title: string, body: string): string {
  return `--- ${title} ---\n${body.trimEnd() || '(no output)'}`;
}
