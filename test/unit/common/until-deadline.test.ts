import assert from 'node:assert/strict';
import { untilDeadline } from '../../../common/src/until-deadline.js';

describe('untilDeadline (common/src/until-deadline.ts)', () => {
  it('is true for work that ends in time, rejected or not, and for no work', async () => {
    assert.equal(await untilDeadline(Promise.resolve(1), Date.now() + 1_000), true);
    assert.equal(await untilDeadline(Promise.reject(new Error('x')), Date.now() + 1_000), true);
    assert.equal(await untilDeadline(undefined, Date.now() - 1), true);
  });

  it('is false when the deadline comes first, and a later rejection of the work is not unhandled', async () => {
    let reject!: (e: Error) => void;
    const stuck = new Promise((_, r) => { reject = r; });
    assert.equal(await untilDeadline(stuck, Date.now() + 20), false);
    reject(new Error('late'));
    await new Promise((r) => setImmediate(r));
  });

  it('a deadline already passed still lets settled work win', async () => {
    assert.equal(await untilDeadline(Promise.resolve(), Date.now() - 1_000), true);
  });
});
