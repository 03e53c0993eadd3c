import assert from 'node:assert/strict';
import type { Finding } from '../../../common/src/bundle/lint/index.js';
import { RolloutHost, RolloutInfo, RolloutSnapshot } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { BundleInfo, PlanInfo, SigningKeyInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { bundleRemovedRecord, keyRecord, lintFindingRecord, lintSummaryRecord, planDetailRecord } from '../../../controller/src/cli/records-delivery.js';
import { rolloutDetailRecord, rolloutHostRecord, rolloutRecord } from '../../../controller/src/cli/records-rollout.js';
import { assertConforms, documentedKinds } from '../../support/json-docs.js';

/**
 * The `--json` mappers turn the messages' "not set" values (0, "", -1) into
 * null, as docs/json.md promises. The contract test sees them on a rollout
 * and bundle that exist; here the values a fresh or odd message has.
 */
describe('--json records: absent values are null (docs/json.md, "Conventions")', () => {
  const docs = documentedKinds();

  it('a rollout before its first wave: no current wave, no finish, no gate, no pause reason', () => {
    const r = rolloutRecord(RolloutInfo.fromPartial({ id: 'ro-1', state: 'prefetching', currentWave: -1, waveCount: 2, hosts: 3, counts: [{ state: 'pending', count: 3 }], createdAtMs: 5 }));
    assertConforms(docs, 'rollout', [r]);
    assert.deepEqual([r.currentWave, r.finishedAtMs, r.gateUntilMs, r.pauseReason, r.hostCount, r.counts], [null, null, null, null, 3, { pending: 3 }]);
    assert.equal(rolloutRecord(RolloutInfo.fromPartial({ currentWave: 0 })).currentWave, 0, 'wave 0 is a wave');
  });

  it('a pending rollout host: no job, step, message or times; a failed one names its step', () => {
    const pending = rolloutHostRecord(RolloutHost.fromPartial({ agentId: 'a', hostname: 'h', state: 'pending' }));
    assertConforms(docs, 'rollout.host', [pending]);
    assert.deepEqual([pending.hostJobId, pending.stepIndex, pending.stepId, pending.message, pending.startedAtMs, pending.finishedAtMs], [null, null, null, null, null, null]);
    const failed = rolloutHostRecord(RolloutHost.fromPartial({ state: 'failed', stepIndex: 0, stepCount: 2, stepId: 'first', message: 'exit 1', startedAtMs: 7, finishedAtMs: 9 }));
    assert.deepEqual([failed.stepIndex, failed.stepId, failed.startedAtMs], [0, 'first', 7]);
  });

  it('an unknown ETA is null, not -1', () => {
    const d = rolloutDetailRecord(RolloutSnapshot.fromPartial({ info: RolloutInfo.fromPartial({ id: 'ro-1' }), etaMs: -1, atMs: 3 }));
    assertConforms(docs, 'rollout.detail', [d]);
    assert.deepEqual([d.etaMs, d.etaNote], [null, null]);
  });

  it('a key without a name, a plan without a description or file, a finding without a hint, a removal of nothing', () => {
    const k = keyRecord(SigningKeyInfo.fromPartial({ keyId: 'ed25519:00', publicPem: 'PEM', addedAtMs: 1 }));
    assertConforms(docs, 'key', [k]);
    assert.equal(k.name, null);
    const p = planDetailRecord(PlanInfo.fromPartial({ id: 'p', name: 'n' }), { plan: 'name: n\n', file: '' });
    assertConforms(docs, 'plan.detail', [p]);
    assert.deepEqual([p.description, p.file], [null, null]);
    const finding: Finding = { severity: 'warning', rule: 'image-tag', file: 'a.yaml', line: 1, col: 2, message: 'latest' };
    const f = lintFindingRecord(finding);
    assertConforms(docs, 'lint.finding', [f]);
    assert.equal(f.hint, null);
    assert.deepEqual(lintSummaryRecord('dir', [finding]), { type: 'summary', target: 'dir', errors: 0, warnings: 1 });
    const gone = bundleRemovedRecord('b', '1', { removed: undefined, chunksDeleted: 0, bytesFreed: 0 });
    assertConforms(docs, 'bundle.removed', [gone]);
    assert.equal(gone.id, null);
    assert.equal(bundleRemovedRecord('b', '1', { removed: BundleInfo.fromPartial({ bundleId: 'x' }), chunksDeleted: 1, bytesFreed: 2 }).id, 'x');
  });
});
