import assert from 'node:assert/strict';
import { ceilOf, floorOf, parseAmount, type Amount } from '../../../controller/src/rollouts/amount.js';
import { assignWaves, waveConcurrency, waveSizes } from '../../../controller/src/rollouts/waves.js';

const A = (...xs: Array<number | string>): Amount[] => xs.map((x) => parseAmount(x, 1).value!);

describe('rollout waves: sizing and rounding', () => {
  it('reads entries as cumulative shares: [1, 10%, 50%, 100%] of 200 is 1, 19, 80, 100', () => {
    assert.deepEqual(waveSizes(A(1, '10%', '50%', '100%'), 200), [1, 19, 80, 100]);
  });
  it('sums to the number of targets for every fleet size from 0 to 300', () => {
    for (let n = 0; n <= 300; n++) {
      const s = waveSizes(A(1, '10%', '50%', '100%'), n);
      assert.equal(s.reduce((a, b) => a + b, 0), n, `n=${n}`);
      assert.ok(s.every((x) => x >= 1), `no empty wave for n=${n}: ${s}`);
    }
  });
  it('rounds percentages up so a non-empty wave never becomes 0: 1% of 10 is 1', () => {
    assert.deepEqual(waveSizes(A('1%', '100%'), 10), [1, 9]);
  });
  it('computes percentages exactly: 10% of 30 is 3, not 4 (no float error)', () => {
    assert.deepEqual(waveSizes(A('10%', '100%'), 30), [3, 27]);
    assert.equal(ceilOf({ percent: 10 }, 30), 3);
    assert.equal(ceilOf({ percent: 12.5 }, 8), 1);
    assert.equal(ceilOf({ percent: 12.5 }, 9), 2);
    assert.equal(ceilOf({ percent: 33.33 }, 3), 1);
    assert.equal(ceilOf({ percent: 33.34 }, 3), 2);
  });
  it('gives a wave at least one host when its cumulative target is already reached', () => {
    // 5 hosts: 1 → cumulative 1; 10% → ceil(0.5)=1, already reached, so the wave still takes 1.
    assert.deepEqual(waveSizes(A(1, '10%', '50%', '100%'), 5), [1, 1, 1, 2]);
  });
  it('never exceeds the remaining hosts: counts above the fleet are capped', () => {
    assert.deepEqual(waveSizes(A(50, '100%'), 10), [10]);
    assert.deepEqual(waveSizes(A(2, 5, 8), 3), [2, 1]);
  });
  it('drops declared waves left with no hosts in a small fleet', () => {
    assert.deepEqual(waveSizes(A(1, '10%', '50%', '100%'), 2), [1, 1]);
    assert.deepEqual(waveSizes(A(1, '10%', '50%', '100%'), 1), [1]);
    assert.deepEqual(waveSizes(A(1, '100%'), 0), []);
  });
  it('lets the last wave take everything left, whatever its entry says', () => {
    assert.deepEqual(waveSizes(A(1, '10%'), 100), [1, 99]);
    assert.deepEqual(waveSizes(A(5), 100), [100]);
    assert.deepEqual(waveSizes(A('50%'), 7), [7]);
  });
  it('mixes counts and percentages on the same cumulative scale', () => {
    assert.deepEqual(waveSizes(A('10%', 20, '100%'), 100), [10, 10, 80]);
  });
  it('assigns hosts to waves in order', () => {
    assert.deepEqual(assignWaves([1, 2, 3]), [0, 1, 1, 2, 2, 2]);
  });
  it('limits concurrency per wave: count, percent of the wave (rounded up), at least 1, default the whole wave', () => {
    assert.equal(waveConcurrency(null, 40), 40);
    assert.equal(waveConcurrency({ count: 5 }, 40), 5);
    assert.equal(waveConcurrency({ percent: 25 }, 10), 3);
    assert.equal(waveConcurrency({ percent: 1 }, 10), 1);
    assert.equal(waveConcurrency(null, 0), 1);
  });
  it('parses amounts and refuses nonsense', () => {
    assert.deepEqual(parseAmount(3).value, { count: 3 });
    assert.deepEqual(parseAmount('3').value, { count: 3 });
    assert.deepEqual(parseAmount('12.5%').value, { percent: 12.5 });
    assert.match(parseAmount('0%').error!, /above 0%/);
    assert.match(parseAmount('101%').error!, /at most 100%/);
    assert.match(parseAmount('1.234%').error!, /percentage like/);
    assert.match(parseAmount(0, 1).error!, /at least 1/);
    assert.match(parseAmount(-1).error!, /whole number/);
    assert.match(parseAmount(1.5).error!, /whole number/);
    assert.match(parseAmount('ten').error!, /host count/);
    assert.equal(floorOf({ percent: 10 }, 50), 5);
  });
});
