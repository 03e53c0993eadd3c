/**
 * `exec` on the host: runs a command after its guards (creates / unless /
 * onlyIf) say it is needed. Output lines stream through ctx.output; cancel and
 * timeout kill the command's whole process group. A run that exits with an
 * expected code is `changed`; a guard that says "already done" is `unchanged`.
 */
import { existsSync, statSync } from 'node:fs';
import { ErrorCode } from '../../../common/src/errors.js';
import { formatDuration } from '../../../common/src/duration.js';
import type { Command, ExecArgs } from '../../../common/src/plan/steps/exec.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { hostPath } from './util/host-path.js';
import type { ProcessResult } from '../../../common/src/proc/run-process.js';
import { commandText, runPlanCommand, tail } from './sys/run.js';
import { guarded, StepError } from './step-error.js';

/** Options shared by the command and its guards. */
export interface CommandEnv { env?: Record<string, string>; cwd?: string; timeoutMs?: number }

/**
 * Runs a command for a step, streaming its lines (with a prefix for guards),
 * and throws a StepError when it could not start, timed out or was
 * cancelled. Exit codes are left to the caller.
 */
export async function runStepCommand(cmd: Command, ctx: StepContext, o: CommandEnv, prefix = ''): Promise<ProcessResult> {
  const cwd = o.cwd ? hostPath(ctx, o.cwd) : undefined;
  if (cwd && !(existsSync(cwd) && statSync(cwd).isDirectory())) {
    throw new StepError(ErrorCode.NotFound, `working directory ${o.cwd} does not exist`, 'create it in an earlier step or fix "cwd"');
  }
  const r = await runPlanCommand(ctx, cmd, { timeoutMs: o.timeoutMs, env: o.env, cwd, prefix });
  const text = commandText(cmd);
  if (r.cancelled) throw new StepError(ErrorCode.Cancelled, `cancelled while running ${text}; its process group was stopped`);
  if (r.timedOut) {
    throw new StepError(ErrorCode.DeadlineExceeded, `${text} timed out after ${formatDuration(o.timeoutMs!)}${lastOutput(r)}`,
      'raise "timeout" if it needs longer, or find out why it hangs');
  }
  if (r.startError) {
    throw new StepError(ErrorCode.NotFound, `${r.startError} (running ${text})`,
      'install it (from a bundle) or give its absolute path; the agent does not search the internet for tools');
  }
  return r;
}

/** Up to 20 lines of what a command printed, on the lines after a failure message. */
export function lastOutput(r: ProcessResult): string {
  const both = `${r.stdout}${r.stderr}`.trim();
  return both ? `\nlast output:\n${tail(both)}` : ' (it printed nothing)';
}

async function exec(args: ExecArgs, ctx: StepContext): Promise<StepOutcome> {
  const text = commandText(args.command);
  if (args.creates && existsSync(hostPath(ctx, args.creates))) {
    return { status: 'unchanged', message: `${args.creates} exists; not running ${text}` };
  }
  const guardEnv = { env: args.env, cwd: args.cwd, timeoutMs: args.timeoutMs };
  // Guards run in check mode too: they are probes, and they decide what check mode reports.
  if (args.unless) {
    const g = await runStepCommand(args.unless, ctx, guardEnv, '[unless] ');
    if (g.exitCode === 0) return { status: 'unchanged', message: `unless-guard succeeded (${commandText(args.unless)}); not running ${text}` };
  }
  if (args.onlyIf) {
    const g = await runStepCommand(args.onlyIf, ctx, guardEnv, '[onlyIf] ');
    if (g.exitCode !== 0) {
      return { status: 'skipped', message: `onlyIf-guard exited ${g.exitCode ?? g.signal} (${commandText(args.onlyIf)}); not running ${text}` };
    }
  }
  if (ctx.check) return { status: 'changed', diff: `would run: ${text}\n`, message: `check mode: would run ${text}` };

  const r = await runStepCommand(args.command, ctx, guardEnv);
  if (r.exitCode === undefined || !args.expectExit.includes(r.exitCode)) {
    const how = r.exitCode === undefined ? `was killed by ${r.signal}` : `exited ${r.exitCode}`;
    throw new StepError(ErrorCode.StepExitCode, `${text} ${how} (expected exit ${args.expectExit.join(' or ')})${lastOutput(r)}`,
      'fix the cause shown in the output and run the step again; add the code to "expectExit" if it means success');
  }
  return { status: 'changed', message: `ran ${text} (exit ${r.exitCode}, ${formatDuration(r.durationMs)})` };
}

/** The `exec` executor. */
export const execExecutor: StepExecutor<ExecArgs> = {
  type: 'exec',
  run: (args, ctx) => guarded(ctx.signal, () => exec(args, ctx)),
};
