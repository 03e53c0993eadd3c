import type { HostCount, RolloutEvent, RolloutHost, RolloutInfo, RolloutLogLine, RolloutSnapshot } from '../../../common/src/gen/ferry/v1/rollouts.js';
import { ago, badge, html, link, page, when, type Html, type Viewer } from './html.js';

/** Most host rows drawn in one rollout view; failing, offline, running and waiting hosts come first. */
const MAX_HOST_ROWS = 500;

const TERMINAL_ROLLOUT = new Set(['succeeded', 'failed', 'aborted']);
const TERMINAL_HOST = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);

/**
 * How a host reads on the page (RESEARCH.md §4): failed is one thing,
 * offline another (a host that cannot report is not a failure yet), and
 * waiting (its wave not begun, another job on it, a pause) is neither.
 */
export function hostView(h: RolloutHost): 'failed' | 'offline' | 'running' | 'waiting' | 'succeeded' | 'skipped' | 'cancelled' {
  if (h.state === 'failed') return 'failed';
  if (!TERMINAL_HOST.has(h.state) && !h.connected) return 'offline';
  if (h.state === 'running') return 'running';
  if (TERMINAL_HOST.has(h.state)) return h.state as 'succeeded' | 'skipped' | 'cancelled';
  return 'waiting';
}
const VIEW_ORDER = ['failed', 'offline', 'running', 'waiting', 'cancelled', 'skipped', 'succeeded'];

function counts(cs: HostCount[]): Html {
  return html`${cs.map((c) => html`${badge(c.state)} ${c.count} `)}`;
}

/** The state in one phrase, with the pause apart: a paused rollout is still running, only held. */
function stateLine(i: RolloutInfo): Html {
  const gate = i.state === 'waiting' && i.gateUntilMs ? html` <span class="note">next wave ${ago(i.gateUntilMs)}</span>` : '';
  const paused = i.paused ? html` ${badge('paused')} <span class="note" data-testid="pause-reason">${i.pauseReason}</span>` : '';
  return html`<span data-testid="rollout-state">${badge(i.state)}</span>${paused}${gate}`;
}

/** The buttons an admin gets, for the actions that apply now; viewers get none (the server refuses them anyway). */
function actions(s: RolloutSnapshot, v: Viewer): Html {
  const i = s.info!;
  if (v.role !== 'admin') return html`<p class="note" data-testid="read-only">You are signed in as a viewer: you see this rollout but cannot change it.</p>`;
  if (TERMINAL_ROLLOUT.has(i.state) && !(i.state === 'failed')) return html``;
  const b: Html[] = [];
  const live = !TERMINAL_ROLLOUT.has(i.state) && i.state !== 'aborting';
  if (live && !i.paused) b.push(html`<button type="button" data-action="pause">Pause</button>`);
  if (live && i.paused) b.push(html`<button type="button" data-action="resume">Resume</button>`);
  if (i.state === 'awaiting-approval' || i.state === 'waiting') b.push(html`<button type="button" data-action="approve">Approve wave ${i.currentWave + 2}</button>`);
  if (s.hosts.some((h) => h.state === 'failed') && i.state !== 'aborting') b.push(html`<button type="button" data-action="retry">Retry failed hosts</button>`);
  if (live) b.push(html`<button type="button" data-action="abort" class="danger">Abort</button>`);
  if (b.length === 0) return html``;
  return html`<div class="actions" data-rollout="${i.id}"><input type="text" name="reason" placeholder="reason (pause, abort)" aria-label="reason">${b}</div>`;
}

function hostRow(rolloutId: string, h: RolloutHost): Html {
  const view = hostView(h);
  // The step matters while a host runs and where it failed; a finished host's last step says little.
  const step = view !== 'running' && view !== 'failed' ? '' : h.stepCount ? `${Math.min(h.stepIndex + 1, h.stepCount)}/${h.stepCount}${h.stepId ? ` ${h.stepId}` : ''}` : h.stepId;
  const tail = view === 'failed' && h.lastLines.length
    ? html`<pre class="tail" data-testid="log-tail">${h.lastLines.join('\n')}</pre>` : '';
  const logs = h.hostJobId ? link(`/rollouts/${encodeURIComponent(rolloutId)}/logs?host=${encodeURIComponent(h.agentId)}`, 'log') : '';
  return html`<tr data-host="${h.hostname}" data-view="${view}"><td>${link(`/hosts/${encodeURIComponent(h.agentId)}`, h.hostname)}</td><td>${h.wave + 1}</td>
<td>${badge(view, h.state)}${h.attempt > 1 ? html` <span class="note">attempt ${h.attempt}</span>` : ''}</td><td>${step}</td>
<td>${h.message}${tail}</td><td>${logs}</td></tr>`;
}

/** The live part of a rollout page; also what the event stream sends as each snapshot. */
export function rolloutLive(s: RolloutSnapshot, v: Viewer): Html {
  const i = s.info!;
  const byView = new Map<string, number>();
  for (const h of s.hosts) byView.set(hostView(h), (byView.get(hostView(h)) ?? 0) + 1);
  const hosts = [...s.hosts].sort((a, b) => VIEW_ORDER.indexOf(hostView(a)) - VIEW_ORDER.indexOf(hostView(b)) || a.wave - b.wave);
  const shown = hosts.slice(0, MAX_HOST_ROWS);
  const eta = TERMINAL_ROLLOUT.has(i.state) ? `finished ${when(i.finishedAtMs)}` : s.etaMs >= 0 ? `ETA ${ago(s.atMs + s.etaMs, s.atMs)}` : s.etaNote;
  return html`<section class="summary"><p>${stateLine(i)} wave <strong data-testid="current-wave">${i.currentWave + 1}</strong> of ${i.waveCount} ·
${i.hosts} hosts · plan ${i.plan} · created by ${i.createdBy} ${when(i.createdAtMs)} · ${eta}</p>
<p class="counts" data-testid="host-views">${VIEW_ORDER.filter((k) => byView.get(k)).map((k) => html`${badge(k)} ${byView.get(k)} `)}</p>
<p class="note">${i.strategy}</p>${actions(s, v)}<p class="status" data-testid="action-status" role="status"></p></section>
<h2>Waves</h2><table class="waves"><thead><tr><th>#</th><th>hosts</th><th>planned</th><th>state</th><th>by state</th><th>started</th><th>finished</th></tr></thead><tbody>
${s.waves.map((w) => html`<tr data-wave="${w.index + 1}"><td>${w.index + 1}</td><td>${w.size}</td><td>${w.planned}</td><td>${badge(w.state)}</td><td>${counts(w.counts)}</td><td>${when(w.startedAtMs)}</td><td>${when(w.finishedAtMs)}</td></tr>`)}
</tbody></table>
<h2>Hosts</h2><table class="hosts"><thead><tr><th>host</th><th>wave</th><th>state</th><th>step</th><th>message</th><th></th></tr></thead><tbody>
${shown.map((h) => hostRow(i.id, h))}</tbody></table>
${hosts.length > shown.length ? html`<p class="note">${hosts.length - shown.length} more hosts (succeeded, skipped or cancelled) not drawn; \`ferry rollout show ${i.id}\` lists all.</p>` : ''}`;
}

/** One line of the rollout's event log. */
export function eventItem(e: RolloutEvent): Html {
  return html`<li data-seq="${e.seq}"><time>${when(e.atMs)}</time> <span class="kind">${e.kind}</span>${e.hostname ? html` <strong>${e.hostname}</strong>` : ''}${e.state ? html` ${badge(e.state)}` : ''} ${e.message}</li>`;
}

export function rolloutPage(s: RolloutSnapshot, v: Viewer): string {
  const i = s.info!;
  return page(`Rollout ${i.name}`, v, '/rollouts', html`<p class="note">${i.id} · <a href="/rollouts">all rollouts</a></p>
<div id="live" data-live="/rollouts/${encodeURIComponent(i.id)}/events" data-rollout="${i.id}">${rolloutLive(s, v)}</div>
<h2>Events</h2><p class="note" data-testid="stream-state">connecting…</p><ol id="events" reversed></ol>`);
}

export function rolloutsPage(list: RolloutInfo[], v: Viewer): string {
  return page('Rollouts', v, '/rollouts', html`<table><thead><tr><th>rollout</th><th>plan</th><th>state</th><th>wave</th><th>hosts</th><th>by state</th><th>created</th><th>by</th></tr></thead><tbody>
${list.map((r) => html`<tr><td>${link(`/rollouts/${encodeURIComponent(r.id)}`, r.name)} <span class="note">${r.id}</span></td><td>${r.plan}</td>
<td>${badge(r.state)}${r.paused ? html` ${badge('paused')}` : ''}</td><td>${r.currentWave + 1}/${r.waveCount}</td><td>${r.hosts}</td><td>${counts(r.counts)}</td><td>${when(r.createdAtMs)}</td><td>${r.createdBy}</td></tr>`)}
</tbody></table>${list.length === 0 ? html`<p class="note">No rollouts yet: <code>ferry rollout create -f rollout.yaml</code>.</p>` : ''}`);
}

export function rolloutLogsPage(id: string, host: string, lines: RolloutLogLine[], v: Viewer): string {
  return page(`Log of ${host}`, v, '/rollouts', html`<p class="note">rollout ${link(`/rollouts/${encodeURIComponent(id)}`, id)}</p>
<pre class="log">${lines.map((l) => html`<span class="${l.stderr ? 'stderr' : l.kind}">[${l.attempt}] ${when(l.atMs)} ${l.text}</span>\n`)}</pre>`);
}
