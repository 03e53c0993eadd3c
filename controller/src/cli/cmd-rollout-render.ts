import { formatDuration } from '../../../common/src/duration.js';
import type { HostCount, RolloutEvent, RolloutHost, RolloutInfo, RolloutSnapshot, WaveInfo } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { ago, table } from '../../../common/src/table.js';

/** Host states in the order people read them. */
const ORDER = ['running', 'prefetching', 'ready', 'pending', 'succeeded', 'failed', 'skipped', 'cancelled'];
const MAX_LISTED = 8;

export function countsText(counts: readonly HostCount[]): string {
  return [...counts].sort((a, b) => ORDER.indexOf(a.state) - ORDER.indexOf(b.state)).map((c) => `${c.count} ${c.state}`).join(' · ') || 'no hosts';
}

/** How many hosts are in `states`. */
const count = (counts: readonly HostCount[], ...states: string[]) => counts.filter((c) => states.includes(c.state)).reduce((n, c) => n + c.count, 0);

/**
 * Hosts the rollout finished by its own rules (ran, or skipped as offline).
 * Cancelled hosts are not among them: an abort stopped them, and they are
 * shown as cancelled.
 */
const done = (counts: readonly HostCount[]) => count(counts, 'succeeded', 'failed', 'skipped');

/** "running, wave 2/3", "paused (error budget exceeded …)", "awaiting approval for wave 3". */
export function stateText(i: RolloutInfo): string {
  const wave = i.currentWave >= 0 ? `, wave ${i.currentWave + 1}/${i.waveCount}` : '';
  if (i.paused) return `PAUSED${wave} — ${i.pauseReason}`;
  if (i.state === 'awaiting-approval') return `waiting for approval of wave ${i.currentWave + 2}/${i.waveCount}`;
  if (i.state === 'waiting') return `waiting until ${new Date(i.gateUntilMs).toISOString()} for wave ${i.currentWave + 2}/${i.waveCount}`;
  if (i.state === 'aborting') return `aborting — ${i.pauseReason}`;
  return `${i.state}${['succeeded', 'failed', 'aborted'].includes(i.state) ? '' : wave}`;
}

export function bar(n: number, total: number, width = 30): string {
  const fill = total > 0 ? Math.round((n / total) * width) : width;
  return `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]`;
}

/** Where a host is: "step 3/7 restart-edgecore", or its message (first line: details are in `ferry rollout logs`). */
export function hostDetail(h: RolloutHost): string {
  const first = h.message.split('\n')[0]!;
  const step = h.stepCount > 0 ? `step ${h.stepIndex + 1}/${h.stepCount} ${h.stepId}` : '';
  if (h.state === 'running') return `${step || 'starting'}${h.connected ? '' : ' (agent offline: its result arrives when it reconnects)'}`;
  if (h.state === 'failed') return `${h.stepId && h.stepCount ? `at step ${h.stepIndex + 1}/${h.stepCount} ${h.stepId}: ` : ''}${first}`;
  return first;
}

/**
 * How long a wave's hosts ran, and separately how long the rollout then
 * waited (for approval, or the wait between waves) before the next wave:
 * " ran 2.0s, then waited 10m0s for approval".
 */
export function waveTimes(w: WaveInfo, next: WaveInfo | undefined, i: RolloutInfo, now: number): string {
  if (!w.startedAtMs) return '';
  const ran = ` ran ${formatDuration((w.finishedAtMs || now) - w.startedAtMs)}`;
  if (!w.finishedAtMs || !next) return ran;
  const gate = i.strategy.includes('approval') ? 'for approval' : 'between waves';
  if (next.startedAtMs) return next.startedAtMs > w.finishedAtMs ? `${ran}, then waited ${formatDuration(next.startedAtMs - w.finishedAtMs)} ${gate}` : ran;
  const waiting = (i.state === 'waiting' || i.state === 'awaiting-approval') && i.currentWave === w.index;
  return waiting ? `${ran}, waiting ${formatDuration(now - w.finishedAtMs)} ${gate}` : ran;
}

/** What the operator types next, when the rollout waits for a person: its own row, so cutting a long line never hides it. */
export function nextCommand(i: RolloutInfo): string | undefined {
  if (i.state === 'awaiting-approval') return `ferry rollout approve ${i.id}`;
  if (i.paused) return `ferry rollout resume ${i.id}   (or: ferry rollout abort ${i.id})`;
  return undefined;
}

/**
 * The watch screen: header, the command to type when a person must act,
 * one bar per wave, counts, failing hosts with their last lines, running
 * hosts. Bars narrow on terminals under 100 columns.
 */
export function renderFrame(s: RolloutSnapshot, now = Date.now(), listRunning = true, width = 120, height = Number.POSITIVE_INFINITY): string[] {
  const i = s.info!;
  const eta = s.etaMs >= 0 ? `ETA ${formatDuration(s.etaMs)}${s.etaNote ? ` (${s.etaNote})` : ''}` : `ETA ? (${s.etaNote})`;
  // The state has a row of its own: a long rollout name cut at the width must not hide it.
  const lines = [`rollout ${i.id} ${i.name} (plan ${i.plan})`, `  ${stateText(i)}${['succeeded', 'failed', 'aborted'].includes(i.state) ? '' : ` · ${eta}`}`];
  const next = nextCommand(i);
  if (next) lines.push(`  next: ${next}`);
  lines.push(`  ${i.strategy}`);
  const cells = width < 100 ? 12 : 30;
  for (const [k, w] of s.waves.entries()) {
    lines.push(`wave ${String(w.index + 1).padEnd(2)} ${bar(done(w.counts), w.size, cells)} ${`${done(w.counts)}/${w.size}`.padEnd(9)} ${w.state.padEnd(7)} ${countsText(w.counts)}${waveTimes(w, s.waves[k + 1], i, now)}`);
  }
  lines.push(`hosts: ${countsText(i.counts)}`);
  const failing = s.hosts.filter((h) => h.state === 'failed');
  const running = listRunning ? s.hosts.filter((h) => h.state === 'running') : [];
  // The host lists get the rows left on the screen: the header, the command
  // to type, the waves and the counts must never scroll off the top.
  const room = height - lines.length;
  let lastLines = 3;
  let listed = MAX_LISTED;
  const section = (n: number, per: number) => (n === 0 ? 0 : 1 + Math.min(n, listed) * per + (n > listed ? 1 : 0));
  const need = () => section(failing.length, 1 + lastLines) + section(running.length, 1);
  while (need() > room && (lastLines > 0 || listed > 1)) {
    if (lastLines > 0) lastLines = lastLines === 3 ? 1 : 0;
    else listed--;
  }
  if (failing.length) {
    lines.push(`failing (${failing.length}):`);
    for (const h of failing.slice(0, listed)) {
      lines.push(`  ${h.hostname}: ${hostDetail(h)}`);
      for (const l of lastLines ? h.lastLines.slice(-lastLines) : []) lines.push(`    | ${l}`);
    }
    if (failing.length > listed) lines.push(`  … and ${failing.length - listed} more (ferry rollout show ${i.id})`);
  }
  if (running.length && need() <= room) {
    lines.push(`running (${running.length}):`);
    for (const h of running.slice(0, listed)) lines.push(`  ${h.hostname}: ${hostDetail(h)}`);
    if (running.length > listed) lines.push(`  … and ${running.length - listed} more`);
  } else if (running.length) {
    lines.push(`running: ${running.length} (ferry rollout show ${i.id})`);
  }
  return lines;
}

/** One event as a plain line for logs and pipes. */
export function eventLine(e: RolloutEvent): string {
  const t = new Date(e.atMs).toISOString().slice(11, 19);
  if (e.kind === 'host') return `${t} ${e.hostname}: ${e.state}${e.message ? ` — ${e.message}` : ''}`;
  return `${t} ${e.kind}${e.message ? `: ${e.message}` : ''}`;
}

/** `ferry rollout ls`: what happened to the hosts, one column per outcome (an aborted rollout's cancelled hosts are not "done"). */
export function listTable(rs: readonly RolloutInfo[], now = Date.now()): string {
  return table([['ID', 'NAME', 'PLAN', 'STATE', 'WAVE', 'HOSTS', 'SUCCEEDED', 'FAILED', 'SKIPPED', 'CANCELLED', 'CREATED'],
    ...rs.map((r) => [r.id, r.name, r.plan, r.paused ? `paused (${r.state})` : r.state, r.currentWave >= 0 ? `${r.currentWave + 1}/${r.waveCount}` : `-/${r.waveCount}`,
      String(r.hosts), ...['succeeded', 'failed', 'skipped', 'cancelled'].map((st) => String(count(r.counts, st))), ago(r.createdAtMs, now)])]);
}

/** `ferry rollout show`: the frame, then every host. */
export function showText(s: RolloutSnapshot): string {
  const head = renderFrame(s, Date.now(), false).join('\n');
  const hosts = table([['HOST', 'WAVE', 'STATE', 'TRY', 'DETAIL'],
    ...s.hosts.map((h) => [h.hostname, String(h.wave + 1), h.state, String(h.attempt), hostDetail(h)])]);
  return `${head}\n\n${hosts}`;
}
