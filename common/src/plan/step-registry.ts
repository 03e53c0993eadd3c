import { imageImportSchema } from './steps/image-import.js';
import { iptablesRuleSchema } from './steps/iptables-rule.js';
import { kubectlApplySchema } from './steps/kubectl-apply.js';
import { kubectlPatchSchema } from './steps/kubectl-patch.js';
import { systemdUnitSchema } from './steps/systemd-unit.js';
import { assertSchema } from './steps/assert.js';
import { execSchema } from './steps/exec.js';
import { containerdMirrorSchema } from './steps/containerd-mirror.js';
import { fileInstallSchema } from './steps/file-install.js';
import { hostsEntrySchema } from './steps/hosts-entry.js';
import { templateRenderSchema } from './steps/template-render.js';
import { waitForSchema } from './steps/wait-for.js';
import { yamlEditSchema } from './steps/yaml-edit.js';
import type { StepSchema } from './step-schema.js';

/**
 * Every step type's argument schema, by type name. Each schema module in
 * ./steps/ is imported here — the one list of what step types exist.
 */
const schemas: Array<StepSchema<unknown>> = [
  // step schemas: keep this list sorted by type name, one import per line above
  assertSchema,
  containerdMirrorSchema,
  execSchema,
  fileInstallSchema,
  hostsEntrySchema,
  imageImportSchema,
  iptablesRuleSchema,
  kubectlApplySchema,
  kubectlPatchSchema,
  systemdUnitSchema,
  templateRenderSchema,
  waitForSchema,
  yamlEditSchema,
];

export const STEP_SCHEMAS: ReadonlyMap<string, StepSchema<unknown>> = new Map(schemas.map((s) => [s.type, s]));
