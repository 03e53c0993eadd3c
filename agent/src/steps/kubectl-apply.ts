/**
 * Executor for `kubectl.apply` (args: common/src/plan/steps/kubectl-apply.ts). Drives the
 * host's real kubectl. `kubectl diff` decides first (exit 0: nothing to do; 1: differences;
 * >1: error) — so a second run reports `unchanged` even for server-side apply, whose output
 * says "serverside-applied" either way — then `kubectl apply`, then each `kubectl wait`.
 * Check mode runs only `kubectl diff` (read-only on the server) and shows the apply argv.
 *
 * Not tested against a live API server (none can be had offline on the build machine); see
 * test/unit/steps-sys/kubectl-steps.test.ts for what is tested.
 */
import { ErrorCode } from '../../../common/src/errors.js';
import type { KubectlApplyArgs } from '../../../common/src/plan/steps/kubectl-apply.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { kubectl, kubectlBase, kubectlError, parseChanges, requireKubeconfig, runWaits, waitArgv } from './sys/kubectl.js';
import { resolveBundleFiles } from './sys/paths.js';
import { shellQuote } from './sys/run.js';
import { guarded, StepError } from './step-error.js';

/** The kubectl invocations for an apply: `diff` first, then `apply`, with stdin for an inline manifest. */
export interface ApplyCommands {
  diff: string[];
  apply: string[];
  waits: string[][];
  input?: string;
}

/** Builds the exact argv kubectl.apply runs for `files` (host paths of the bundle files). */
export function applyCommands(args: KubectlApplyArgs, files: readonly string[]): ApplyCommands {
  const base = kubectlBase(args);
  const src = [...files.flatMap((f) => ['-f', f]), ...(args.manifest !== undefined ? ['-f', '-'] : [])];
  const ssa = args.serverSide ? ['--server-side', ...(args.forceConflicts ? ['--force-conflicts'] : [])] : [];
  const fm = `--field-manager=${args.fieldManager}`;
  return {
    diff: [...base, 'diff', ...ssa, fm, ...src],
    apply: [...base, 'apply', ...ssa, fm, ...src],
    waits: args.waitFor.map((w) => waitArgv(args, w)),
    ...(args.manifest !== undefined ? { input: args.manifest } : {}),
  };
}

/** The `kubectl.apply` step executor. */
export const kubectlApplyExecutor: StepExecutor<KubectlApplyArgs> = {
  type: 'kubectl.apply',
  run: (args, ctx) => guarded(ctx.signal, () => apply(args, ctx)),
};

async function apply(args: KubectlApplyArgs, ctx: StepContext): Promise<StepOutcome> {
  requireKubeconfig(args, ctx.root);
  const files = args.bundle !== undefined && args.files ? resolveBundleFiles(ctx, args.bundle, args.files, 'manifest').map((f) => f.path) : [];
  const cmd = applyCommands(args, files);
  const plan = [cmd.apply, ...cmd.waits].map((a) => `# ${shellQuote(a)}`).join('\n');

  const d = await kubectl(ctx, args, cmd.diff, cmd.input, false);
  let diffText: string | undefined;
  if (d.exitCode === 1) diffText = d.stdout;
  else if (d.exitCode !== 0) {
    const e = kubectlError(d, 'kubectl diff');
    // In a real run, a diff error other than an unreachable server (e.g. a custom resource
    // whose CRD this very apply creates) is not fatal: apply decides and reports.
    if (e.code === ErrorCode.StepServiceUnreachable || ctx.check) throw new StepError(e.code, e.message, e.hint, `${e.details ?? ''}\nwould run:\n${plan}`);
    ctx.output(`[ferry] kubectl diff failed (exit ${d.exitCode}); applying anyway`, 'stderr');
    diffText = '';
  }

  if (ctx.check) {
    if (diffText === undefined) return { status: 'unchanged', message: `kubectl diff: no differences; would run nothing (${shellQuote(cmd.diff)})` };
    return { status: 'changed', diff: `${plan}\n${diffText}`, message: `would run: ${shellQuote(cmd.apply)}` };
  }

  let changed: string[] = [];
  if (diffText !== undefined) {
    const r = await kubectl(ctx, args, cmd.apply, cmd.input);
    if (r.exitCode !== 0) throw kubectlError(r, 'kubectl apply');
    changed = parseChanges(r.stdout).changed;
  }
  const waited = await runWaits(ctx, args, args.waitFor);
  const waitNote = waited.length ? `; ${waited.join(', ')}` : '';
  if (changed.length === 0) return { status: 'unchanged', message: `all objects up to date${waitNote}` };
  return { status: 'changed', diff: diffText || changed.join('\n'), message: `${changed.join(', ')}${waitNote}` };
}
