import assert from 'node:assert/strict';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { HOST_STATES, HOST_TERMINAL, ROLLOUT_TERMINAL, type HostState, type RolloutState } from '../../../controller/src/rollouts/model.js';
import {
  HOST_TRANSITIONS, ROLLOUT_TRANSITIONS, hostTransition, rolloutTransition, setPaused,
} from '../../../controller/src/rollouts/transitions.js';
import { model } from './model-helpers.js';

const ROLLOUT_STATES: RolloutState[] = ['prefetching', 'running', 'waiting', 'awaiting-approval', 'aborting', 'succeeded', 'failed', 'aborted'];

/** The diagrams of docs/rollouts.md ("State"), written out as from → to pairs. */
const ROLLOUT_DIAGRAM = new Set([
  'prefetching→running', 'prefetching→aborting',
  'running→running', 'running→waiting', 'running→awaiting-approval', 'running→succeeded', 'running→failed', 'running→aborting',
  'waiting→running', 'waiting→aborting', 'awaiting-approval→running', 'awaiting-approval→aborting',
  'aborting→aborted', 'failed→running',
]);
const HOST_DIAGRAM = new Set([
  'prefetching→ready', 'prefetching→failed', 'prefetching→pending', 'prefetching→cancelled',
  'pending→running', 'pending→skipped', 'pending→failed', 'pending→cancelled',
  'ready→running', 'ready→skipped', 'ready→failed', 'ready→cancelled',
  'running→succeeded', 'running→failed', 'running→cancelled', 'failed→pending',
]);

const refused = (code: ErrorCode, re: RegExp) => (e: unknown) => e instanceof FerryError && e.code === code && re.test(e.message) && /docs\/rollouts\.md/.test(e.hint ?? '');

describe('rollout transition tables', () => {
  it('the rollout table has exactly the edges of the documented diagram', () => {
    assert.deepEqual(new Set(ROLLOUT_TRANSITIONS.map(([f, , t]) => `${f}→${t}`)), ROLLOUT_DIAGRAM);
  });

  it('the host table has exactly the edges of the documented diagram', () => {
    assert.deepEqual(new Set(HOST_TRANSITIONS.map(([f, , t]) => `${f}→${t}`)), HOST_DIAGRAM);
  });

  it('final states have no way out, except retry of a failed rollout or host', () => {
    for (const s of ROLLOUT_TERMINAL) {
      assert.deepEqual(ROLLOUT_TRANSITIONS.filter(([f]) => f === s).map(([, c]) => c), s === 'failed' ? ['retry'] : [], s);
    }
    for (const s of HOST_TERMINAL) {
      assert.deepEqual(HOST_TRANSITIONS.filter(([f]) => f === s).map(([, c]) => c), s === 'failed' ? ['retry'] : [], s);
    }
  });

  it('every state can be reached (from a created rollout: prefetching or running; host: prefetching or pending)', () => {
    const reach = <S>(edges: ReadonlyArray<readonly [S, string, S]>, start: S[]) => {
      const seen = new Set(start);
      for (let n = 0; n < 20; n++) for (const [f, , t] of edges) if (seen.has(f)) seen.add(t);
      return seen;
    };
    assert.deepEqual(reach(ROLLOUT_TRANSITIONS, ['prefetching', 'running'] as RolloutState[]), new Set(ROLLOUT_STATES));
    assert.deepEqual(reach(HOST_TRANSITIONS, ['prefetching', 'pending'] as HostState[]), new Set(HOST_STATES));
  });

  it('applies every edge of the table, and refuses every other (state, cause, to) with a FerryError that changes nothing', () => {
    const causes = [...new Set(ROLLOUT_TRANSITIONS.map(([, c]) => c))];
    for (const from of ROLLOUT_STATES) for (const cause of causes) for (const to of ROLLOUT_STATES) {
      const m = { ...model([1]), state: from };
      const legal = ROLLOUT_TRANSITIONS.some(([f, c, t]) => f === from && c === cause && t === to);
      if (legal) {
        rolloutTransition(m, cause, to);
        assert.equal(m.state, to);
      } else {
        assert.throws(() => rolloutTransition(m, cause, to), refused(ErrorCode.InvalidArgument, new RegExp(`^rollout ro-test is ${from}`)));
        assert.equal(m.state, from);
      }
    }
    const hostCauses = [...new Set(HOST_TRANSITIONS.map(([, c]) => c))];
    for (const from of HOST_STATES) for (const cause of hostCauses) for (const to of HOST_STATES) {
      const h = { ...model([1]).hosts[0]!, state: from };
      const legal = HOST_TRANSITIONS.some(([f, c, t]) => f === from && c === cause && t === to);
      if (legal) {
        hostTransition('ro-test', h, cause, to);
        assert.equal(h.state, to);
      } else {
        assert.throws(() => hostTransition('ro-test', h, cause, to), refused(ErrorCode.InvalidArgument, new RegExp(`^host h0 of rollout ro-test is ${from}`)));
        assert.equal(h.state, from);
      }
    }
  });

  it('says what the cause applies to', () => {
    const m = { ...model([1, 1]), state: 'running' as const };
    assert.throws(() => rolloutTransition(m, 'approve', 'running'),
      refused(ErrorCode.InvalidArgument, /^rollout ro-test is running: approve cannot move it to running \(approve applies to a rollout that is waiting or awaiting-approval\)$/));
    const h = { ...m.hosts[0]!, state: 'succeeded' as const };
    assert.throws(() => hostTransition('ro-test', h, 'retry', 'pending'),
      refused(ErrorCode.InvalidArgument, /^host h0 of rollout ro-test is succeeded: retry cannot move it to pending \(retry applies to a host that is failed\)$/));
  });

  it('stopping or ending clears the pause flag', () => {
    const m = { ...model([1]), state: 'running' as const, paused: true, pauseReason: 'x' };
    rolloutTransition(m, 'abort', 'aborting');
    assert.equal(m.paused, false);
  });

  it('pause applies to a live rollout only; resume to a paused one', () => {
    for (const s of ROLLOUT_STATES) {
      const m = { ...model([1]), state: s };
      if (['prefetching', 'running', 'waiting', 'awaiting-approval'].includes(s)) {
        setPaused(m, true, 'checking');
        assert.deepEqual([m.paused, m.pauseReason], [true, 'checking']);
        setPaused(m, false, '');
        assert.deepEqual([m.paused, m.pauseReason], [false, '']);
      } else {
        assert.throws(() => setPaused(m, true, 'x'), refused(ErrorCode.InvalidArgument, new RegExp(`is ${s}: there is nothing to pause`)));
      }
      assert.throws(() => setPaused({ ...model([1]), state: s }, false, ''), /is not paused/);
    }
  });
});
