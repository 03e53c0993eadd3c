/**
 * `assert` on the host: runs a check command and compares exit code and
 * output. Passing is `unchanged` (an assertion never changes the host); a
 * failure carries the actual output, so the operator sees what was there.
 * Not run in check mode: the steps it verifies have not run either.
 */
import { ErrorCode } from '../../../common/src/errors.js';
import type { AssertArgs } from '../../../common/src/plan/steps/assert.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { runStepCommand } from './exec.js';
import { commandText, tail } from './sys/run.js';
import { guarded, StepError } from './step-error.js';

/** Longest actual output quoted in a failure message. */
const SHOW_CHARS = 4_000;

function quote(s: string): string {
  return JSON.stringify(s);
}

async function check(args: AssertArgs, ctx: StepContext): Promise<StepOutcome> {
  const text = commandText(args.command);
  if (ctx.check) return { status: 'skipped', message: `check mode: would assert on ${text}` };
  const r = await runStepCommand(args.command, ctx, { timeoutMs: args.timeoutMs });
  const output = args.stream === 'stdout' ? r.stdout : args.stream === 'stderr' ? r.stderr : `${r.stdout}${r.stderr}`;
  const wrong: string[] = [];
  if (r.exitCode !== args.exitCode) wrong.push(`exit code ${r.exitCode ?? `none (killed by ${r.signal})`}, expected ${args.exitCode}`);
  for (const s of args.contains ?? []) if (!output.includes(s)) wrong.push(`${args.stream} does not contain ${quote(s)}`);
  for (const s of args.notContains ?? []) if (output.includes(s)) wrong.push(`${args.stream} contains ${quote(s)}`);
  if (args.matches !== undefined && !new RegExp(args.matches, 'm').test(output)) wrong.push(`${args.stream} does not match /${args.matches}/`);
  if (args.equals !== undefined && output.trimEnd() !== args.equals.trimEnd()) wrong.push(`${args.stream} is not ${quote(args.equals.trimEnd())}`);
  if (wrong.length === 0) return { status: 'unchanged', message: `assertion holds: ${text}` };

  let shown = tail(output, 40);
  if (shown.length > SHOW_CHARS) shown = `…${shown.slice(-SHOW_CHARS)}`;
  const actual = output.trim() ? `actual ${args.stream}:\n${shown}` : `actual ${args.stream}: (empty)`;
  const stderr = args.stream === 'stdout' && r.stderr.trim() ? `\nstderr:\n${tail(r.stderr, 10)}` : '';
  throw new StepError(ErrorCode.StepAssertFailed, `assertion failed for ${text}: ${wrong.join('; ')}\n${actual}${stderr}`,
    'what it verifies is not in place on this host; see the actual output below');
}

/** The `assert` executor. */
export const assertExecutor: StepExecutor<AssertArgs> = {
  type: 'assert',
  run: (args, ctx) => guarded(ctx.signal, () => check(args, ctx)),
};
