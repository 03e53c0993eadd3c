import type { StepExecutor } from './step.js';

/**
 * Every step executor this agent has, by type. Each type's argument schema is
 * in common/src/plan/steps/ and listed in common/src/plan/step-registry.ts;
 * a test checks that the two lists name the same types.
 *
 * Executors are loaded on their first step, not at start: most of them pull
 * in YAML tooling and image-tar parsing (megabytes of RSS) that an idle agent, or
 * one only staging bundles, never needs.
 */
function lazy(type: string, load: () => Promise<StepExecutor<never>>): StepExecutor<unknown> {
  let loaded: Promise<StepExecutor<never>> | undefined;
  return {
    type,
    async run(args, ctx) {
      const e = await (loaded ??= load());
      if (e.type !== type) throw new Error(`step registry: ${type} loaded the executor of ${e.type}`);
      return e.run(args as never, ctx);
    },
  };
}

const executors: Array<StepExecutor<unknown>> = [
  lazy('assert', async () => (await import('./assert.js')).assertExecutor),
  lazy('containerd.mirror', async () => (await import('./containerd-mirror.js')).containerdMirrorExecutor),
  lazy('exec', async () => (await import('./exec.js')).execExecutor),
  lazy('file.install', async () => (await import('./file-install.js')).fileInstallExecutor),
  lazy('hosts.entry', async () => (await import('./hosts-entry.js')).hostsEntryExecutor),
  lazy('image.import', async () => (await import('./image-import.js')).imageImportExecutor),
  lazy('iptables.rule', async () => (await import('./iptables-rule.js')).iptablesRuleExecutor),
  lazy('kubectl.apply', async () => (await import('./kubectl-apply.js')).kubectlApplyExecutor),
  lazy('kubectl.patch', async () => (await import('./kubectl-patch.js')).kubectlPatchExecutor),
  lazy('systemd.unit', async () => (await import('./systemd-unit.js')).systemdUnitExecutor),
  lazy('template.render', async () => (await import('./template-render.js')).templateRenderExecutor),
  lazy('wait.for', async () => (await import('./wait-for.js')).waitForExecutor),
  lazy('yaml.edit', async () => (await import('./yaml-edit.js')).yamlEditExecutor),
];

export const STEP_EXECUTORS: ReadonlyMap<string, StepExecutor<unknown>> = new Map(executors.map((e) => [e.type, e]));
