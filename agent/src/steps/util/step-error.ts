/**
 * Failures inside step executors. Executors throw StepError (or FerryError)
 * and `runGuarded` turns them into a `failed` outcome, so every failure has a
 * code, says what and where, and says what to do next.
 */
import { FerryError, ErrorCode } from '../../../../common/src/errors.js';
import type { StepOutcome } from '../../../../common/src/plan/types.js';

/** Step-level error codes (StepOutcome.errorCode allows ErrorCode values or STEP_*). */
export const StepCode = {
  YamlInvalid: 'STEP_YAML_INVALID',
  YamlPath: 'STEP_YAML_PATH',
  ResultInvalid: 'STEP_RESULT_INVALID',
  ExitCode: 'STEP_EXIT_CODE',
  AssertFailed: 'STEP_ASSERT_FAILED',
  TemplateInvalid: 'STEP_TEMPLATE_INVALID',
} as const;

/** Codes a StepError may carry. */
export type StepErrorCode = ErrorCode | (typeof StepCode)[keyof typeof StepCode];

/** An executor failure: `message` says what and where, `hint` what to do next. */
export class StepError extends Error {
  constructor(readonly code: StepErrorCode, message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StepError';
  }
}

/** The failed outcome for anything thrown, keeping codes and hints. */
export function failedOutcome(err: unknown): StepOutcome {
  if (err instanceof StepError || err instanceof FerryError) {
    // The hint goes on the first line; quoted command output, if any, follows it.
    const [first, ...rest] = err.message.split('\n');
    return { status: 'failed', message: [err.hint ? `${first}; ${err.hint}` : first, ...rest].join('\n'), errorCode: err.code };
  }
  const e = err as NodeJS.ErrnoException;
  // Plain file-system errors still say which path, and common ones get advice.
  const hint = e?.code === 'EACCES' || e?.code === 'EPERM' ? '; run the agent as root or fix the permissions'
    : e?.code === 'ENOSPC' ? '; free disk space on the host and retry' : '';
  const code = e?.code === 'ENOSPC' ? ErrorCode.DiskFull : e?.code === 'EACCES' || e?.code === 'EPERM' ? ErrorCode.PermissionDenied : ErrorCode.Internal;
  return { status: 'failed', message: `${e?.message ?? String(err)}${hint}`, errorCode: code };
}

/** Runs an executor body, turning throws into a failed outcome. */
export async function runGuarded(body: () => Promise<StepOutcome>): Promise<StepOutcome> {
  try {
    return await body();
  } catch (err) {
    return failedOutcome(err);
  }
}
