/**
 * Executor for `kubectl.patch` (args: common/src/plan/steps/kubectl-patch.ts). Drives the
 * host's real kubectl: `kubectl patch RESOURCE --type=T -p PATCH`; kubectl prints
 * "patched (no change)" when the object already matches, which is `unchanged`. Check mode
 * adds `--dry-run=server`: the API server evaluates the patch and stores nothing.
 *
 * Not tested against a live API server (none can be had offline on the build machine).
 */
import type { KubectlPatchArgs } from '../../../common/src/plan/steps/kubectl-patch.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { kubectl, kubectlBase, kubectlError, parseChanges, requireKubeconfig, runWaits } from './sys/kubectl.js';
import { shellQuote } from './sys/run.js';
import { guarded } from './step-error.js';

/** The exact kubectl patch argv (check mode adds --dry-run=server). */
export function patchArgv(args: KubectlPatchArgs, check: boolean): string[] {
  return [...kubectlBase(args), 'patch', args.resource, `--type=${args.type}`, '-p', args.patch,
    '--field-manager=ferry', ...(check ? ['--dry-run=server'] : [])];
}

/** The `kubectl.patch` step executor. */
export const kubectlPatchExecutor: StepExecutor<KubectlPatchArgs> = {
  type: 'kubectl.patch',
  run: (args, ctx) => guarded(ctx.signal, () => patch(args, ctx)),
};

async function patch(args: KubectlPatchArgs, ctx: StepContext): Promise<StepOutcome> {
  requireKubeconfig(args, ctx.root);
  const argv = patchArgv(args, ctx.check);
  const r = await kubectl(ctx, args, argv);
  if (r.exitCode !== 0) throw kubectlError(r, `kubectl patch ${args.resource}`);
  const { changed } = parseChanges(r.stdout);
  const shown = shellQuote(patchArgv(args, false));
  if (ctx.check) {
    return changed.length ? { status: 'changed', diff: `# ${shown}`, message: `would patch ${args.resource}` } : { status: 'unchanged', message: `${args.resource} already has the patch` };
  }
  const waited = await runWaits(ctx, args, args.waitFor);
  const waitNote = waited.length ? `; ${waited.join(', ')}` : '';
  if (!changed.length) return { status: 'unchanged', message: `${args.resource} already has the patch${waitNote}` };
  return { status: 'changed', diff: `# ${shown}`, message: `patched ${args.resource}${waitNote}` };
}
