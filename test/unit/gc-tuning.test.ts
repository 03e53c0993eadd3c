import assert from 'node:assert/strict';
import { CONTROLLER_HEAP_GROWING_PERCENT, tuneControllerGc } from '../../controller/src/gc-tuning.js';

describe('controller/gc-tuning: V8 old-generation growth for serving', () => {
  // Not V8's setter: the test process's own GC stays as it was for the tests after these.
  const record = (): void => undefined;

  it('a factor the operator gave node (flag or NODE_OPTIONS, either spelling) is left alone', () => {
    assert.equal(tuneControllerGc(['--heap-growing-percent=50'], '', record), '--heap-growing-percent=50');
    assert.equal(tuneControllerGc([], '--max-old-space-size=512 --heap_growing_percent=0', record), '--heap_growing_percent=0');
  });

  it('otherwise sets the controller\'s factor (its effect, 22 major GCs against 6 in one 8-client pull, is measured by hand: gc-tuning.ts)', () => {
    assert.equal(tuneControllerGc([], '', record), `--heap-growing-percent=${CONTROLLER_HEAP_GROWING_PERCENT}`);
    assert.equal(tuneControllerGc(['--trace-gc'], '--max-old-space-size=512', record), `--heap-growing-percent=${CONTROLLER_HEAP_GROWING_PERCENT}`, 'other flags are not a factor');
  });
});
