import 'reflect-metadata';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { ManualClock } from '../../../common/src/clock.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { silentLogger } from '../../../common/src/log.js';
import { RolloutCommands } from '../../../controller/src/rollouts/rollout-commands.js';
import type { StoredRollout } from '../../../controller/src/rollouts/rollout-store.js';
import type { RolloutScheduler } from '../../../controller/src/rollouts/scheduler.js';
import type { Db } from '../../../controller/src/store/db.js';
import { migrateStore } from '../../../controller/src/store/migrate.js';
import { describeStores } from '../../support/stores.js';
import { tempDir, waitFor } from '../../support/fixtures.js';

/** The scheduler as commands see it: running or not, and `create` (the one change that needs no live rollout). */
class FakeScheduler {
  stopped = true;
  created: string[] = [];
  refuse: FerryError | undefined;
  readonly store = { load: async (id: string) => ({ model: { id } }) as unknown as StoredRollout };
  isStopped(): boolean { return this.stopped; }
  async create(spec: string): Promise<StoredRollout> {
    if (this.refuse) throw this.refuse;
    this.created.push(spec);
    return { model: { id: `r-${this.created.length}` } } as unknown as StoredRollout;
  }
}

describeStores('rollout commands: changes asked where the scheduler is not', function (store) {
  let dir: string;
  let db: Db;
  let clock: ManualClock;
  let sched: FakeScheduler;
  let commands: RolloutCommands;
  beforeEach(async () => {
    dir = tempDir('ferry-rc-');
    db = await store.open(dir);
    await migrateStore(db);
    clock = new ManualClock();
    sched = new FakeScheduler();
    commands = new RolloutCommands({ db, fenced: db, scheduler: sched as unknown as RolloutScheduler, replicaId: 'r1', log: silentLogger(), clock, waitMs: 5_000, checkMs: 100 });
  });
  afterEach(async () => {
    await commands.stopApplying();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Advances the clock 100 ms each time the caller sleeps on it (more than
   * `base` timers pending: the scheduler's poll is one), until `p` settles;
   * in between, the store's answers arrive in real time.
   */
  async function drive<T>(p: Promise<T>, base = 0): Promise<T> {
    let done = false;
    const settled = p.finally(() => { done = true; });
    settled.catch(() => undefined);
    while (!done) {
      await waitFor(() => done || clock.pending() > base, 5_000, 'the call waits on the clock or ends');
      if (!done) clock.advance(100);
    }
    return settled;
  }

  it('a command nobody takes within the wait is withdrawn and never applied afterwards', async () => {
    const p = drive(commands.submit({ action: 'create', spec: 'late', file: 'r.yaml' }, 'alice'));
    await assert.rejects(p, (err: FerryError) => {
      assert.equal(err.code, ErrorCode.Unavailable);
      assert.match(err.message, /no rollout scheduler took the change within 5 s; it was withdrawn and not applied/);
      return true;
    });
    assert.deepEqual(await db.all('SELECT id FROM rollout_commands'), [], 'the withdrawn row is removed');
    // A scheduler elected afterwards finds nothing to apply.
    sched.stopped = false;
    commands.startApplying();
    clock.advance(1_000);
    await commands.stopApplying();
    assert.deepEqual(sched.created, []);
  });

  it('the scheduler applies a pending command once, as who asked; its answer or refusal reaches the caller', async () => {
    sched.stopped = false;
    commands.startApplying();
    const ok = drive(commands.submit({ action: 'create', spec: 'spec-1', file: 'r.yaml' }, 'alice'), 1);
    assert.equal((await ok).model.id, 'r-1');
    assert.deepEqual(sched.created, ['spec-1']);
    sched.refuse = new FerryError(ErrorCode.InvalidArgument, 'bad spec', 'fix it');
    await assert.rejects(drive(commands.submit({ action: 'create', spec: 'spec-2', file: 'r.yaml' }, 'bob'), 1), (err: FerryError) => {
      assert.deepEqual([err.code, err.message, err.hint], [ErrorCode.InvalidArgument, 'bad spec', 'fix it']);
      return true;
    });
    assert.deepEqual(sched.created, ['spec-1'], 'applied once each');
    assert.deepEqual(await db.all('SELECT id FROM rollout_commands'), []);
  });
});
