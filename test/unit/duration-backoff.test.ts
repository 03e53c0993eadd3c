import assert from 'node:assert/strict';
import { formatDuration, parseDuration } from '../../common/src/duration.js';
import { Backoff } from '../../agent/src/session/backoff.js';

describe('durations', () => {
  it('parses compound durations and rejects junk', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('2d'), 172_800_000);
    for (const bad of ['', '10', 's', '1x', '1h 30m', '-1s']) assert.throws(() => parseDuration(bad), /not a duration/, bad);
  });
  it('formats for people', () => {
    assert.equal(formatDuration(950), '950ms');
    assert.equal(formatDuration(12_300), '12.3s');
    assert.equal(formatDuration(250_000), '4m10s');
  });
});

describe('backoff', () => {
  it('grows exponentially within [d/2, d], caps, and resets', () => {
    const lo = new Backoff(100, 1000, () => 0);
    const hi = new Backoff(100, 1000, () => 1);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => lo.next()), [50, 100, 200, 400, 500, 500]);
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => hi.next()), [100, 200, 400, 800, 1000, 1000]);
    lo.reset();
    assert.equal(lo.next(), 50);
  });
});
