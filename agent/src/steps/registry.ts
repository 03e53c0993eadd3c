import { assertExecutor } from './assert.js';
import { execExecutor } from './exec.js';
import { fileInstallExecutor } from './file-install.js';
import { imageImportExecutor } from './image-import.js';
import { iptablesRuleExecutor } from './iptables-rule.js';
import { kubectlApplyExecutor } from './kubectl-apply.js';
import { kubectlPatchExecutor } from './kubectl-patch.js';
import type { StepExecutor } from './step.js';
import { systemdUnitExecutor } from './systemd-unit.js';
import { templateRenderExecutor } from './template-render.js';
import { waitForExecutor } from './wait-for.js';
import { yamlEditExecutor } from './yaml-edit.js';

/**
 * Every step executor this agent has, by type. Each type's argument schema is
 * in common/src/plan/steps/ and listed in common/src/plan/step-registry.ts;
 * a test checks that the two lists name the same types.
 */
const executors: Array<StepExecutor<never>> = [
  assertExecutor,
  execExecutor,
  fileInstallExecutor,
  imageImportExecutor,
  iptablesRuleExecutor,
  kubectlApplyExecutor,
  kubectlPatchExecutor,
  systemdUnitExecutor,
  templateRenderExecutor,
  waitForExecutor,
  yamlEditExecutor,
];

export const STEP_EXECUTORS: ReadonlyMap<string, StepExecutor<unknown>> =
  new Map(executors.map((e) => [e.type, e as unknown as StepExecutor<unknown>]));
