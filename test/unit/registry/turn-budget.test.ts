import assert from 'node:assert/strict';
import { TurnBudget } from '../../../common/src/registry/turn-budget.js';

/** A TurnBudget whose turns the test runs by hand. */
function manual(perTurn: number): { budget: TurnBudget; endTurn: () => void; pending: () => number } {
  let queue: Array<() => void> = [];
  const budget = new TurnBudget(perTurn, (fn) => queue.push(fn));
  return {
    budget,
    endTurn: () => {
      const q = queue;
      queue = [];
      for (const fn of q) fn();
    },
    pending: () => queue.length,
  };
}

const settled = async (p: Promise<void>): Promise<boolean> => {
  let done = false;
  void p.then(() => { done = true; });
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('common/registry/turn-budget: bytes written per event-loop turn', () => {
  it('grants writes at once while the turn is under its budget (a write that starts under it is granted whole)', () => {
    const { budget } = manual(4 << 20);
    assert.equal(budget.take(1 << 20), undefined);
    assert.equal(budget.take(3 << 20), undefined);
    assert.ok(budget.take(1) instanceof Promise, 'the turn is spent');
  });

  it('writes past the budget wait for a later turn, in the order asked, and each turn lets through about its budget', async () => {
    const { budget, endTurn } = manual(2 << 20);
    assert.equal(budget.take(2 << 20), undefined);
    const a = budget.take(1 << 20)!;
    const b = budget.take(1 << 20)!;
    const c = budget.take(1 << 20)!;
    assert.equal(budget.queued, 3);
    assert.equal(await settled(a), false, 'nothing moves before the turn ends');
    endTurn();
    assert.deepEqual([await settled(a), await settled(b), await settled(c)], [true, true, false]);
    assert.ok(budget.take(1) instanceof Promise, 'while c waits, a new write queues behind it');
    endTurn();
    assert.equal(await settled(c), true);
  });

  it('a new write never overtakes one already waiting', async () => {
    const { budget, endTurn } = manual(1 << 20);
    budget.take(1 << 20);
    const first = budget.take(10)!;
    endTurn();
    assert.equal(await settled(first), true);
    const later = budget.take(10);
    assert.equal(later, undefined, 'under the budget again once nobody waits');
  });

  it('schedules nothing while idle: one turn end after the last grant resets it, and then none', () => {
    const { budget, endTurn, pending } = manual(1 << 20);
    assert.equal(pending(), 0);
    budget.take(10);
    assert.equal(pending(), 1);
    endTurn();
    assert.equal(pending(), 0, 'nothing was let through: no further turn is asked for');
    assert.equal(budget.take(1 << 20), undefined, 'a fresh turn');
  });

  it('with the real event loop, waiting writers are let through on later turns', async () => {
    const budget = new TurnBudget(100);
    assert.equal(budget.take(100), undefined);
    const order: number[] = [];
    await Promise.all([1, 2, 3].map((k) => budget.take(100)!.then(() => order.push(k))));
    assert.deepEqual(order, [1, 2, 3]);
  });
});
