/**
 * Runs one step executor in-process, for e2e tests that execute it INSIDE a simulated host
 * (`host.exec(['node', RUN_STEP, type, JSON.stringify(args), '--check'])`): the host's
 * overlay root shows this machine's node and build/ at the same paths.
 *
 *   node build/test/e2e/steps/run-step.js TYPE ARGS_JSON [--check] [--bundle ALIAS=DIR]... [--state DIR] [--fleet DIR]
 *
 * `--fleet DIR` gives the step fleet TLS files (DIR/ca.crt, agent.crt, agent.key), as an
 * enrolled agent's state directory has them.
 *
 * The args go through the type's schema first (as the agent does). Output lines the executor
 * streams go to stderr as "[stdout] ..." / "[stderr] ..."; the last stdout line is the
 * StepOutcome as JSON. Exit 0 unless the outcome failed (exit 1) or the args were invalid (2).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StepSchema } from '../../../common/src/plan/step-schema.js';
import { containerdMirrorSchema } from '../../../common/src/plan/steps/containerd-mirror.js';
import { hostsEntrySchema } from '../../../common/src/plan/steps/hosts-entry.js';
import { imageImportSchema } from '../../../common/src/plan/steps/image-import.js';
import { iptablesRuleSchema } from '../../../common/src/plan/steps/iptables-rule.js';
import { kubectlApplySchema } from '../../../common/src/plan/steps/kubectl-apply.js';
import { kubectlPatchSchema } from '../../../common/src/plan/steps/kubectl-patch.js';
import { systemdUnitSchema } from '../../../common/src/plan/steps/systemd-unit.js';
import { containerdMirrorExecutor } from '../../../agent/src/steps/containerd-mirror.js';
import { hostsEntryExecutor } from '../../../agent/src/steps/hosts-entry.js';
import { imageImportExecutor } from '../../../agent/src/steps/image-import.js';
import { iptablesRuleExecutor } from '../../../agent/src/steps/iptables-rule.js';
import { kubectlApplyExecutor } from '../../../agent/src/steps/kubectl-apply.js';
import { kubectlPatchExecutor } from '../../../agent/src/steps/kubectl-patch.js';
import type { StepContext, StepExecutor } from '../../../agent/src/steps/step.js';
import { systemdUnitExecutor } from '../../../agent/src/steps/systemd-unit.js';

/** Absolute path of this script once compiled (what tests pass to node inside a host). */
export const RUN_STEP = join(dirname(fileURLToPath(import.meta.url)), 'run-step.js');

const types: Record<string, [StepSchema<unknown>, StepExecutor<unknown>]> = {
  'systemd.unit': [systemdUnitSchema, systemdUnitExecutor as StepExecutor<unknown>],
  'iptables.rule': [iptablesRuleSchema, iptablesRuleExecutor as StepExecutor<unknown>],
  'image.import': [imageImportSchema, imageImportExecutor as StepExecutor<unknown>],
  'kubectl.apply': [kubectlApplySchema, kubectlApplyExecutor as StepExecutor<unknown>],
  'kubectl.patch': [kubectlPatchSchema, kubectlPatchExecutor as StepExecutor<unknown>],
  'containerd.mirror': [containerdMirrorSchema, containerdMirrorExecutor as StepExecutor<unknown>],
  'hosts.entry': [hostsEntrySchema, hostsEntryExecutor as StepExecutor<unknown>],
};

async function main(argv: string[]): Promise<number> {
  const [type, json, ...rest] = argv;
  const entry = type ? types[type] : undefined;
  if (!entry || json === undefined) {
    console.error(`usage: run-step TYPE ARGS_JSON [--check] [--bundle ALIAS=DIR] (types: ${Object.keys(types).join(', ')})`);
    return 2;
  }
  const bundles: Record<string, string> = {};
  let stateDir = '/var/lib/ferry-test/state';
  let fleetDir: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--bundle') { const [a, d] = rest[++i]!.split('='); bundles[a!] = d!; }
    if (rest[i] === '--state') stateDir = rest[++i]!;
    if (rest[i] === '--fleet') fleetDir = rest[++i]!;
  }
  const parsed = entry[0].parse(JSON.parse(json) as Record<string, unknown>);
  if (!parsed.args) {
    console.log(JSON.stringify({ status: 'failed', errorCode: 'STEP_INVALID_ARGS', message: parsed.problems.map((p) => `${p.path}: ${p.message}`).join('; ') }));
    return 2;
  }
  const ac = new AbortController();
  process.on('SIGTERM', () => ac.abort(new Error('SIGTERM')));
  const ctx: StepContext = {
    check: rest.includes('--check'), params: {}, facts: {}, labels: {}, stateDir, root: '/', signal: ac.signal,
    ...(fleetDir ? { fleet: { ca: join(fleetDir, 'ca.crt'), cert: join(fleetDir, 'agent.crt'), key: join(fleetDir, 'agent.key') } } : {}),
    bundleDir: (as) => {
      if (!bundles[as]) throw new Error(`bundle "${as}" is not staged`);
      return bundles[as]!;
    },
    output: (line, stream = 'stdout') => process.stderr.write(`[${stream}] ${line}\n`),
  };
  const outcome = await entry[1].run(parsed.args, ctx);
  console.log(JSON.stringify(outcome));
  return outcome.status === 'failed' ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => { console.error(err); process.exitCode = 3; });
}
