import assert from 'node:assert/strict';
import { allowedFailures, budgetExceeded, exceeds } from '../../../controller/src/rollouts/budget.js';

describe('rollout error budget: exceeded when failures are MORE than the allowance', () => {
  it('count 0: the first failure exceeds it (SSM MaxErrors=0)', () => {
    assert.equal(exceeds(0, { count: 0 }, 10), false);
    assert.equal(exceeds(1, { count: 0 }, 10), true);
  });
  it('count N: N failures are within, N+1 exceed (SSM MaxErrors=N)', () => {
    assert.equal(exceeds(2, { count: 2 }, 10), false);
    assert.equal(exceeds(3, { count: 2 }, 10), true);
  });
  it('10% of 50 allows 5 and trips on the 6th, as in SSM\'s documented example', () => {
    assert.equal(allowedFailures({ percent: 10 }, 50), 5);
    assert.equal(exceeds(5, { percent: 10 }, 50), false);
    assert.equal(exceeds(6, { percent: 10 }, 50), true);
  });
  it('rounds the allowance down: 10% of 5 allows none (one failure is 20%, Ansible would abort too)', () => {
    assert.equal(allowedFailures({ percent: 10 }, 5), 0);
    assert.equal(exceeds(1, { percent: 10 }, 5), true);
  });
  it('exactly at the percentage is within: 20% of 5 allows 1, 2 exceed (Ansible: "exceeds")', () => {
    assert.equal(exceeds(1, { percent: 20 }, 5), false);
    assert.equal(exceeds(2, { percent: 20 }, 5), true);
  });
  it('100% is never exceeded; 50% of 3 allows 1', () => {
    assert.equal(exceeds(10, { percent: 100 }, 10), false);
    assert.equal(allowedFailures({ percent: 50 }, 3), 1);
  });
  it('checks the wave budget against the wave size and the total against all targets', () => {
    const b = { perWave: { percent: 10 }, total: { count: 3 } };
    assert.equal(budgetExceeded(b, { wave: 1, failedInWave: 1, waveSize: 10, failedTotal: 1, total: 100 }), undefined);
    assert.match(budgetExceeded(b, { wave: 1, failedInWave: 2, waveSize: 10, failedTotal: 2, total: 100 })!, /wave 2: 2 of 10 hosts failed, the wave allows 1/);
    assert.match(budgetExceeded(b, { wave: 3, failedInWave: 1, waveSize: 50, failedTotal: 4, total: 100 })!, /4 of 100 hosts failed, the rollout allows 3/);
  });
  it('has no per-wave limit unless one is given', () => {
    assert.equal(budgetExceeded({ perWave: null, total: { percent: 100 } }, { wave: 0, failedInWave: 1, waveSize: 1, failedTotal: 1, total: 1 }), undefined);
  });
});
