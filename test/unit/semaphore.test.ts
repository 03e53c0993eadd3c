import assert from 'node:assert/strict';
import { Semaphore } from '../../common/src/semaphore.js';

describe('semaphore', () => {
  it('admits up to the limit, queues the rest in order, and lets waiters give up at their deadline', async () => {
    const s = new Semaphore(2);
    assert.equal(await s.acquire(), true);
    assert.equal(await s.acquire(), true);
    const order: string[] = [];
    const late = s.acquire(Date.now() + 30).then((ok) => order.push(`late:${ok}`));
    const patient = s.acquire().then((ok) => order.push(`patient:${ok}`));
    await late;
    assert.deepEqual(order, ['late:false']);
    s.release();
    await patient;
    assert.deepEqual(order, ['late:false', 'patient:true']);
  });
});
