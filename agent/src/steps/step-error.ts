/**
 * Failures inside step executors, and how they become a failed StepOutcome.
 * Executors throw StepError (or FerryError); `guarded` turns whatever is
 * thrown into an outcome whose first line says what failed and where, and
 * what to do next, with long evidence (a tool's stderr, systemctl status,
 * the journal) on the following lines.
 */
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';

/** Codes a StepError may carry: Ferry's one closed set (the STEP_* codes are the step-level ones). */
export type StepErrorCode = ErrorCode;

/** A step failure with a stable code, a next-step hint and optional evidence lines. */
export class StepError extends Error {
  constructor(
    readonly code: StepErrorCode,
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
  const [first, ...rest] = message.split('\n');
  let text = [hint ? `${first!.replace(/\.$/, '')}. Next: ${hint}` : first, ...rest].join('\n');
  if (details && details.trim()) text += `\n${details.trimEnd()}`;
  return text;
}

/** Turns anything thrown inside an executor into a failed outcome. */
export function failureOutcome(err: unknown, signal?: AbortSignal, diff?: string): StepOutcome {
  const extra = diff ? { diff } : {};
  if (err instanceof StepError) {
    return { status: 'failed', message: describeFailure(err.message, err.hint, err.details), errorCode: err.code, ...extra };
  }
  if (err instanceof FerryError) return { status: 'failed', message: describeFailure(err.message, err.hint), errorCode: err.code, ...extra };
  if (signal?.aborted) return { status: 'failed', message: `cancelled: ${reasonText(signal.reason)}`, errorCode: ErrorCode.Cancelled, ...extra };
  const e = err as NodeJS.ErrnoException;
  // Plain file-system errors still say which path; common ones get advice.
  if (e?.code === 'EACCES' || e?.code === 'EPERM') {
    return { status: 'failed', message: `${e.message}; run the agent as root or fix the permissions`, errorCode: ErrorCode.PermissionDenied, ...extra };
  }
  if (e?.code === 'ENOSPC') return { status: 'failed', message: `${e.message}; free disk space on the host and retry`, errorCode: ErrorCode.DiskFull, ...extra };
  const msg = err instanceof Error ? err.message : String(err);
  return { status: 'failed', message: `internal error: ${msg}`, errorCode: ErrorCode.Internal, ...extra };
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
  if (signal.aborted) throw new StepError(ErrorCode.Cancelled, `cancelled: ${reasonText(signal.reason)}`);
}

function reasonText(reason: unknown): string {
  if (reason instanceof Error) return reason.name === 'TimeoutError' ? 'step timeout reached' : reason.message;
  return reason === undefined ? 'aborted' : String(reason);
}

/** Indents evidence under a header, e.g. "--- journalctl -u x -n 30 ---". */
export function section(title: string, body: string): string {
  return `--- ${title} ---\n${body.trimEnd() || '(no output)'}`;
}
