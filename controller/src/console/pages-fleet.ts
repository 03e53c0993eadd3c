import type { AgentInfo, BundleInfo, GetJobResponse, JobInfo, JobLogLine, PlanInfo } from '../../../common/src/gen/ferry/v1/admin.js';
import { ago, badge, html, link, page, query, when, type Html, type Viewer } from './html.js';

/** Hosts per fleet page: the table stays quick to draw and read at any fleet size. */
export const FLEET_PAGE_SIZE = 100;

export type AgentState = 'online' | 'offline' | 'revoked';
export const AGENT_STATES: readonly AgentState[] = ['online', 'offline', 'revoked'];

export function agentState(a: AgentInfo): AgentState {
  if (a.revokedAtMs) return 'revoked';
  return a.connected ? 'online' : 'offline';
}

const labels = (a: AgentInfo): Html => html`${a.labels.map((l) => html`<span class="label">${l.key}=${l.value}</span> `)}`;
const mib = (n: number): string => `${Math.round(n / 1048576)} MiB`;

export interface FleetQuery { state: string; selector: string; q: string; page: number }

/** The fleet: counts by state, filters (state, label selector, host search), one page of hosts. */
export function fleetPage(all: AgentInfo[], matching: AgentInfo[], f: FleetQuery, v: Viewer, selectorError = ''): string {
  const count = (s: AgentState) => all.filter((a) => agentState(a) === s).length;
  const pages = Math.max(1, Math.ceil(matching.length / FLEET_PAGE_SIZE));
  const p = Math.min(Math.max(1, f.page), pages);
  const rows = matching.slice((p - 1) * FLEET_PAGE_SIZE, p * FLEET_PAGE_SIZE);
  const at = (n: number) => `/fleet${query({ state: f.state, selector: f.selector, q: f.q, page: n })}`;
  const now = Date.now();
  return page('Fleet', v, '/fleet', html`<p class="counts" data-testid="fleet-counts" data-live="/fleet/events"><span data-count="total">${all.length}</span> hosts:
${AGENT_STATES.map((s) => html`<a href="/fleet${query({ state: s })}">${badge(s)} <span data-count="${s}">${count(s)}</span></a> `)}</p>
<form class="filters" method="get" action="/fleet">
<label>state <select name="state"><option value="">any</option>${AGENT_STATES.map((s) => html`<option value="${s}"${f.state === s ? html` selected` : ''}>${s}</option>`)}</select></label>
<label>labels <input type="text" name="selector" value="${f.selector}" placeholder="site=plant-7,role in (edge)"></label>
<label>host <input type="search" name="q" value="${f.q}" placeholder="hostname or id"></label>
<button type="submit">Filter</button> <a href="/fleet">clear</a></form>
${selectorError ? html`<p class="error" data-testid="filter-error">${selectorError}</p>` : ''}
<p class="note" data-testid="fleet-shown">${matching.length} match · page ${p} of ${pages}</p>
<table class="fleet"><thead><tr><th>host</th><th>id</th><th>state</th><th>labels</th><th>version</th><th>last seen</th><th>certificate</th><th>bundles</th></tr></thead><tbody>
${rows.map((a) => html`<tr data-host="${a.hostname}" data-agent="${a.id}"><td>${link(`/hosts/${encodeURIComponent(a.id)}`, a.hostname)}</td><td class="note">${a.id}</td><td class="state">${badge(agentState(a))}</td>
<td>${labels(a)}</td><td>${a.agentVersion}</td><td>${a.connected ? 'now' : ago(a.lastSeenMs, now)}</td><td title="${when(a.certNotAfterMs)}">${ago(a.certNotAfterMs, now)}</td><td>${a.bundles.length}</td></tr>`)}
</tbody></table>
<nav class="pager">${p > 1 ? link(at(p - 1), '← previous') : ''} ${p < pages ? link(at(p + 1), 'next →') : ''}</nav>`);
}

function jobRows(jobs: JobInfo[]): Html {
  return html`<table><thead><tr><th>job</th><th>kind</th><th>what</th><th>hosts by state</th><th>created</th><th>by</th></tr></thead><tbody>
${jobs.map((j) => html`<tr><td>${link(`/jobs/${encodeURIComponent(j.id)}`, j.id)}</td><td>${j.kind}${j.check ? ' (check)' : ''}</td><td><code>${j.what}</code></td>
<td>${j.counts.map((c) => html`${badge(c.state)} ${c.count} `)}</td><td>${when(j.createdAtMs)}</td><td>${j.createdBy}</td></tr>`)}</tbody></table>`;
}

/** One host: identity, state, certificate, labels, facts, bundles held, its jobs. */
export function hostPage(a: AgentInfo, jobs: JobInfo[], v: Viewer): string {
  const f = a.facts;
  const now = Date.now();
  return page(a.hostname, v, '/fleet', html`<dl class="facts">
<dt>state</dt><dd data-testid="host-state">${badge(agentState(a))}${a.peerAddress ? ` from ${a.peerAddress}` : ''}</dd>
<dt>agent id</dt><dd>${a.id}</dd>
<dt>last seen</dt><dd>${a.connected ? 'connected now' : html`${when(a.lastSeenMs)} (${ago(a.lastSeenMs, now)})`}</dd>
<dt>certificate expires</dt><dd data-testid="cert-expiry">${when(a.certNotAfterMs)} (${ago(a.certNotAfterMs, now)})</dd>
<dt>enrolled</dt><dd>${when(a.enrolledAtMs)}</dd>
${a.revokedAtMs ? html`<dt>revoked</dt><dd>${when(a.revokedAtMs)}</dd>` : ''}
<dt>agent version</dt><dd>${a.agentVersion}</dd>
<dt>labels</dt><dd>${labels(a)}</dd>
<dt>bundles held</dt><dd data-testid="bundles-held">${a.bundles.length ? a.bundles.join(', ') : 'none'}</dd>
</dl>
<h2>Facts</h2>${f ? html`<dl class="facts"><dt>os</dt><dd>${f.os} ${f.osRelease}</dd><dt>kernel</dt><dd>${f.kernel} (${f.arch})</dd>
<dt>cpus · memory</dt><dd>${f.cpus} · ${mib(f.memoryBytes)}</dd>
<dt>boot</dt><dd>${when(f.bootTimeMs)}</dd>
<dt>disks</dt><dd>${f.disks.map((d) => html`${d.mount} (${d.fsType}) ${mib(d.availableBytes)} free of ${mib(d.sizeBytes)}<br>`)}</dd>
<dt>interfaces</dt><dd>${f.interfaces.map((n) => html`${n.name} ${n.addresses.join(' ')}<br>`)}</dd>
<dt>tools</dt><dd>${f.tools.map((t) => html`${t.name}${t.present ? ` ${t.version}` : ' (missing)'}; `)}</dd></dl>` : html`<p class="note">no facts reported</p>`}
<h2>Jobs on this host</h2>${jobs.length ? jobRows(jobs) : html`<p class="note">none in the job history</p>`}`);
}

export function bundlesPage(bundles: BundleInfo[], plans: PlanInfo[], v: Viewer): string {
  return page('Bundles & plans', v, '/bundles', html`<h2>Bundles</h2><table><thead><tr><th>name</th><th>version</th><th>arch</th><th>files</th><th>images</th><th>size</th><th>signed by</th><th>pushed</th></tr></thead><tbody>
${bundles.map((b) => html`<tr><td>${b.name}</td><td>${b.version}</td><td>${b.arch.join(', ')}</td><td>${b.files}</td><td>${b.images}</td><td>${mib(b.sizeBytes)}</td><td>${b.keyId}</td><td>${when(b.createdAtMs)}</td></tr>`)}</tbody></table>
<h2>Plans</h2><table><thead><tr><th>name</th><th>description</th><th>steps</th><th>bundles</th><th>params</th><th>signed by</th><th>pushed</th></tr></thead><tbody>
${plans.map((p) => html`<tr><td>${p.name}</td><td>${p.description}</td><td>${p.steps}</td><td>${p.bundles.join(', ')}</td><td>${p.params.join(', ')}</td><td>${p.keyId}</td><td>${when(p.createdAtMs)}</td></tr>`)}</tbody></table>`);
}

export function jobsPage(jobs: JobInfo[], kind: string, v: Viewer): string {
  return page('Jobs', v, '/jobs', html`<p>${['', 'exec', 'plan'].map((k) => html`<a href="/jobs${query({ kind: k })}" class="${kind === k ? 'current' : ''}">${k || 'all'}</a> `)}</p>${jobRows(jobs)}`);
}

export function jobPage(j: GetJobResponse, v: Viewer): string {
  const i = j.info!;
  return page(`Job ${i.id}`, v, '/jobs', html`<p>${i.kind} <code>${i.what}</code> by ${i.createdBy} at ${when(i.createdAtMs)}</p>
<table><thead><tr><th>host</th><th>state</th><th>step</th><th>message</th><th>updated</th><th></th></tr></thead><tbody>
${j.hosts.map((h) => html`<tr><td>${link(`/hosts/${encodeURIComponent(h.agentId)}`, h.hostname)}</td><td>${badge(h.state)}</td><td>${h.stepId}</td><td>${h.message}</td><td>${when(h.updatedAtMs)}</td>
<td>${link(`/jobs/${encodeURIComponent(i.id)}/logs${query({ host: h.agentId })}`, 'log')}</td></tr>`)}</tbody></table>`);
}

export function jobLogsPage(id: string, host: string, lines: JobLogLine[], v: Viewer): string {
  return page(`Log of job ${id}`, v, '/jobs', html`<p class="note">${link(`/jobs/${encodeURIComponent(id)}`, id)}${host ? ` · ${host}` : ''}</p>
<pre class="log">${lines.map((l) => html`<span class="${l.stderr ? 'stderr' : l.kind}">${l.hostname} ${when(l.atMs)} ${l.text}</span>\n`)}</pre>`);
}
