// Ferry web console: the only script the pages load (no framework). It keeps a
// rollout page live over server-sent events (the server renders every
// fragment), and sends admin actions with the session's CSRF token header.
'use strict';

const csrf = () => document.querySelector('meta[name="ferry-csrf"]')?.getAttribute('content') ?? '';

async function post(path, body) {
  const res = await fetch(path, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Ferry-CSRF': csrf() },
    body: JSON.stringify(body ?? {}),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error ? `${data.error.message}${data.error.hint ? ` (${data.error.hint})` : ''}` : `HTTP ${res.status}`);
  return data;
}

function status(text, bad) {
  const el = document.querySelector('[data-testid="action-status"]');
  if (!el) return;
  el.textContent = text;
  el.className = bad ? 'status error' : 'status';
}

// Actions: delegated, because the live fragment (and its buttons) is replaced on every snapshot.
document.addEventListener('click', async (e) => {
  const button = e.target.closest('button[data-action]');
  if (button) {
    const box = button.closest('[data-rollout]');
    const id = box.getAttribute('data-rollout');
    const action = button.getAttribute('data-action');
    const reason = box.querySelector('input[name="reason"]')?.value ?? '';
    if (action === 'abort' && !window.confirm(`Abort rollout ${id}? Hosts not started are cancelled; running steps are stopped.`)) return;
    button.disabled = true;
    try {
      const r = await post(`/rollouts/${encodeURIComponent(id)}/${action}`, { reason });
      status(`${action}: rollout is ${r.state}${r.paused ? ' (paused)' : ''}`, false);
    } catch (err) {
      status(`${action} refused: ${err.message}`, true);
      button.disabled = false;
    }
    return;
  }
  if (e.target.closest('[data-logout]')) {
    await post('/logout', {}).catch(() => undefined);
    window.location.href = '/fleet';
  }
});

// Live rollout: the server sends whole rendered fragments; keep the reason typed so far.
const live = document.getElementById('live');
if (live && window.EventSource) {
  const events = document.getElementById('events');
  const streamState = document.querySelector('[data-testid="stream-state"]');
  const source = new EventSource(live.getAttribute('data-live'));
  const say = (t) => { if (streamState) streamState.textContent = t; };
  source.addEventListener('open', () => say('live'));
  source.addEventListener('snapshot', (m) => {
    const { html } = JSON.parse(m.data);
    const reason = live.querySelector('input[name="reason"]')?.value ?? '';
    const note = live.querySelector('[data-testid="action-status"]');
    const kept = note ? [note.textContent, note.className] : null;
    live.innerHTML = html;
    const input = live.querySelector('input[name="reason"]');
    if (input) input.value = reason;
    const fresh = live.querySelector('[data-testid="action-status"]');
    if (fresh && kept) { fresh.textContent = kept[0]; fresh.className = kept[1]; }
    live.setAttribute('data-updated', String(Date.now()));
  });
  source.addEventListener('event', (m) => {
    const { html } = JSON.parse(m.data);
    events.insertAdjacentHTML('afterbegin', html);
  });
  source.addEventListener('end', () => { say('finished: no more updates'); source.close(); });
  source.addEventListener('failure', (m) => { say(`stream ended: ${JSON.parse(m.data).message}`); source.close(); });
  source.addEventListener('error', () => { if (source.readyState !== EventSource.CLOSED) say('reconnecting…'); });
}

// Live fleet: counts by state and the state of the hosts on this page, when agents come and go.
const fleet = document.querySelector('[data-testid="fleet-counts"][data-live]');
if (fleet && window.EventSource) {
  const source = new EventSource(fleet.getAttribute('data-live'));
  source.addEventListener('open', () => fleet.setAttribute('data-stream', 'open'));
  source.addEventListener('fleet', (m) => {
    const { counts, total, states } = JSON.parse(m.data);
    fleet.querySelector('[data-count="total"]').textContent = String(total);
    for (const [state, n] of Object.entries(counts)) {
      const el = fleet.querySelector(`[data-count="${state}"]`);
      if (el) el.textContent = String(n);
    }
    for (const row of document.querySelectorAll('tr[data-agent]')) {
      const state = states[row.getAttribute('data-agent')];
      const badge = row.querySelector('td.state .badge');
      if (state && badge && badge.textContent !== state) { badge.textContent = state; badge.className = `badge s-${state}`; }
    }
  });
  source.addEventListener('failure', () => source.close());
}
