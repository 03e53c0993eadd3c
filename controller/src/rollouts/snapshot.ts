import type { HostCount, RolloutEvent, RolloutHost, RolloutInfo, RolloutSnapshot, WaveInfo } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { formatDuration } from '../../../common/src/duration.js';
import type { SessionRegistry } from '../sessions/registry.js';
import { amountText } from './amount.js';
import { estimate } from './eta.js';
import { countStates, HOST_STATES, HOST_TERMINAL, type HostModel, type RolloutModel, type Strategy } from './model.js';
import type { RolloutEventRecord, RolloutStore, StoredRollout } from './rollout-store.js';

/** Output lines shown for each failed host. */
const LAST_LINES = 5;

function counts(hosts: readonly HostModel[]): HostCount[] {
  const c = countStates(hosts);
  return HOST_STATES.filter((s) => c[s] > 0).map((s) => ({ state: s, count: c[s] }));
}

/** The strategy in one line: "waves 1,10%,100% · max 5 · budget 10%/wave, 2 total · pause · approval". */
export function strategyText(s: Strategy): string {
  const parts = [`waves ${s.waves.map(amountText).join(',')}`];
  if (s.maxConcurrency) parts.push(`max ${amountText(s.maxConcurrency)} at once`);
  parts.push(`budget ${s.errorBudget.perWave ? `${amountText(s.errorBudget.perWave)}/wave, ` : ''}${amountText(s.errorBudget.total)} total`);
  parts.push(`on failure ${s.onFailure}`);
  if (s.approval) parts.push('approval between waves');
  else if (s.waitMs) parts.push(`wait ${formatDuration(s.waitMs)} between waves`);
  parts.push(`offline ${s.offline} after ${formatDuration(s.offlineTimeoutMs)}`);
  if (s.prefetch) parts.push('prefetch');
  return parts.join(' · ');
}

export function rolloutInfo(r: StoredRollout): RolloutInfo {
  const m = r.model;
  return {
    id: m.id, name: r.name, plan: r.planName, planId: r.planId, state: m.state, paused: m.paused, pauseReason: m.pauseReason,
    currentWave: m.currentWave, waveCount: m.waveSizes.length, hosts: m.hosts.length, counts: counts(m.hosts),
    createdAtMs: r.createdAt, createdBy: r.createdBy, updatedAtMs: r.updatedAt, finishedAtMs: r.finishedAt ?? 0,
    gateUntilMs: m.gateUntil ?? 0, strategy: strategyText(m.strategy),
    kind: r.spec.upgrade ? 'agent-upgrade' : 'plan', agentVersion: r.spec.upgrade?.version ?? '',
  };
}

export function eventMessage(e: RolloutEventRecord): RolloutEvent {
  return { rolloutId: e.rolloutId, seq: e.seq, atMs: e.at, kind: e.kind, agentId: e.agentId, hostname: e.hostname, state: e.state, message: e.message };
}

/**
 * A wave's state as people read it: `pending` (not begun), `running`,
 * `done` (every host finished by the rollout's own rules), `aborted` (an
 * abort stopped it: some of its hosts were cancelled) and `cancelled` (the
 * rollout was aborted before the wave began).
 */
export function waveState(m: RolloutModel, i: number): string {
  const stopped = m.state === 'aborting' || m.state === 'aborted';
  if (i > m.currentWave) return stopped ? 'cancelled' : 'pending';
  const inWave = m.hosts.filter((h) => h.wave === i);
  if (!inWave.every((h) => HOST_TERMINAL.has(h.state))) return 'running';
  if (stopped && inWave.some((h) => h.state === 'cancelled')) return 'aborted';
  return i < m.currentWave || m.state !== 'running' ? 'done' : 'running';
}

/**
 * Everything `show` and `watch` draw: waves with counts, every host with its
 * step (from the job's stored progress), failed hosts' last output lines, ETA.
 */
export async function snapshot(r: StoredRollout, store: RolloutStore, sessions: Pick<SessionRegistry, 'get'>, now: number): Promise<RolloutSnapshot> {
  const m = r.model;
  const jobs = await store.hostJobs(m.id);
  const times = await store.waves(m.id);
  const hosts: RolloutHost[] = [];
  for (const h of m.hosts) {
    const j = h.hostJobId ? jobs.get(h.hostJobId) : undefined;
    hosts.push({
      agentId: h.agentId, hostname: h.hostname, wave: h.wave, state: h.state, attempt: h.attempt, hostJobId: h.hostJobId ?? '',
      stepIndex: j?.stepIndex ?? 0, stepCount: j?.stepCount ?? 0, stepId: j?.stepId ?? '', message: h.message,
      connected: Boolean(sessions.get(h.agentId)), startedAtMs: h.startedAt ?? 0, finishedAtMs: h.finishedAt ?? 0,
      lastLines: h.state === 'failed' && h.hostJobId ? await store.lastLines(h.hostJobId, LAST_LINES) : [],
    });
  }
  // finishedAtMs is when the wave's hosts were done (or stopped), not when the next wave began:
  // the wait or approval between them is the gap up to the next wave's startedAtMs.
  const waves: WaveInfo[] = m.waveSizes.map((size, i) => ({
    index: i, size, planned: amountText(m.strategy.waves[Math.min(i, m.strategy.waves.length - 1)]!), state: waveState(m, i),
    counts: counts(m.hosts.filter((h) => h.wave === i)), startedAtMs: times[i]?.startedAt ?? 0, finishedAtMs: times[i]?.finishedAt ?? 0,
  }));
  const eta = estimate(m, now);
  return { info: rolloutInfo(r), waves, hosts, etaMs: eta.ms ?? -1, etaNote: eta.note, atMs: now };
}
