import assert from 'node:assert/strict';
import { STEP_SCHEMAS } from '../../common/src/plan/step-registry.js';
import { STEP_EXECUTORS } from '../../agent/src/steps/registry.js';

describe('step registries', () => {
  it('every step type has both an argument schema and an executor', () => {
    assert.deepEqual([...STEP_EXECUTORS.keys()].sort(), [...STEP_SCHEMAS.keys()].sort());
    assert.ok(STEP_SCHEMAS.size >= 11);
    for (const t of ['image.import', 'file.install', 'template.render', 'yaml.edit', 'systemd.unit', 'iptables.rule', 'kubectl.apply', 'kubectl.patch', 'exec', 'wait.for', 'assert']) {
      assert.ok(STEP_SCHEMAS.has(t), t);
    }
  });
});
