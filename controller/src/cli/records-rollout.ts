import { countsByState as counts } from '../../../common/src/cli/json-records.js';
import type { RolloutEvent, RolloutHost, RolloutInfo, RolloutLogLine, RolloutSnapshot, WaveInfo } from '../../../common/src/gen/ferry/v1/rollouts.js';

/**
 * The `--json` records of `ferry rollout` (docs/json.md, "rollout",
 * "rollout.*"), mapped field by field from the Rollouts messages: counts as a
 * map of state to hosts, times as `...Ms` (null when they have not happened),
 * optional texts and indexes null rather than "" or -1.
 */

const time = (ms: number) => (ms > 0 ? ms : null);

/** `rollout ls | create | pause | resume | abort | approve | retry`, and `show`'s `rollout` (docs/json.md, "rollout"). */
export function rolloutRecord(i: RolloutInfo) {
  return {
    id: i.id, name: i.name, kind: i.kind || 'plan', plan: i.plan, planId: i.planId || null, agentVersion: i.agentVersion || null, state: i.state, paused: i.paused, pauseReason: i.pauseReason || null,
    currentWave: i.currentWave >= 0 ? i.currentWave : null, waveCount: i.waveCount, hostCount: i.hosts, counts: counts(i.counts),
    strategy: i.strategy, createdAtMs: i.createdAtMs, createdBy: i.createdBy, updatedAtMs: i.updatedAtMs,
    finishedAtMs: time(i.finishedAtMs), gateUntilMs: time(i.gateUntilMs),
  };
}

/** One wave of `rollout show` (docs/json.md, "rollout.wave"). */
export function waveRecord(w: WaveInfo) {
  return { index: w.index, size: w.size, planned: w.planned, state: w.state, counts: counts(w.counts), startedAtMs: time(w.startedAtMs), finishedAtMs: time(w.finishedAtMs) };
}

/** One host of `rollout show` (docs/json.md, "rollout.host"). */
export function rolloutHostRecord(h: RolloutHost) {
  const atStep = h.stepCount > 0 && Boolean(h.stepId);
  return {
    agentId: h.agentId, hostname: h.hostname, wave: h.wave, state: h.state, attempt: h.attempt, connected: h.connected,
    hostJobId: h.hostJobId || null, stepIndex: atStep ? h.stepIndex : null, stepCount: h.stepCount, stepId: h.stepId || null,
    message: h.message || null, startedAtMs: time(h.startedAtMs), finishedAtMs: time(h.finishedAtMs), lastLines: h.lastLines,
  };
}

/** `rollout show` (docs/json.md, "rollout.detail"). */
export function rolloutDetailRecord(s: RolloutSnapshot) {
  return {
    rollout: rolloutRecord(s.info!), waves: s.waves.map(waveRecord), hosts: s.hosts.map(rolloutHostRecord),
    etaMs: s.etaMs >= 0 ? s.etaMs : null, etaNote: s.etaNote || null, atMs: s.atMs,
  };
}

/** One `rollout watch --json` event (docs/json.md, "rollout.event"). */
export function rolloutEventRecord(e: RolloutEvent) {
  return { type: 'event', rolloutId: e.rolloutId, seq: Number(e.seq), atMs: e.atMs, kind: e.kind, agentId: e.agentId || null, hostname: e.hostname || null,
    state: e.state, message: e.message || null };
}

/** The last `rollout watch --json` record (docs/json.md, "rollout.result"). */
export function rolloutResultRecord(i: RolloutInfo) {
  return { type: 'result', id: i.id, state: i.state, paused: i.paused, pauseReason: i.pauseReason || null, counts: counts(i.counts) };
}

/** One line of `rollout logs` (docs/json.md, "rollout.log"). */
export function rolloutLogRecord(l: RolloutLogLine) {
  return { attempt: l.attempt, hostJobId: l.hostJobId, atMs: l.atMs, kind: l.kind, stream: l.stderr ? 'stderr' : 'stdout', text: l.text };
}
