import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { parseSelector } from '../../../common/src/labels.js';
import { SESSION_COOKIE, type BrowserAuth, type Browser } from './console-auth-http.js';
import { ROLLOUT_ACTIONS, type ConsoleApi, type RolloutAction } from './console-api.js';
import { bare, html } from './html.js';
import { AGENT_STATES, agentState, bundlesPage, fleetPage, hostPage, jobLogsPage, jobPage, jobsPage, type AgentState } from './pages-fleet.js';
import { eventItem, rolloutLive, rolloutLogsPage, rolloutPage, rolloutsPage } from './pages-rollouts.js';

/** Largest action body accepted (a reason and a few host names). */
const MAX_BODY = 16 * 1024;
/** A comment line on idle event streams, so proxies and browsers keep them open. */
const KEEPALIVE_MS = 15_000;

function sendHtml(res: ServerResponse, body: string, status = 200): void {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' }).end(body);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const parts: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new FerryError(ErrorCode.InvalidArgument, `request body over ${MAX_BODY} bytes`);
    parts.push(chunk as Buffer);
  }
  const text = Buffer.concat(parts).toString('utf8').trim();
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new FerryError(ErrorCode.InvalidArgument, 'the action body is not a JSON object', 'send {"reason": "...", "hosts": ["edge-7"]} or nothing');
}

/** The console's pages, event streams and actions, once the browser is known. */
/** Fleet changes (sessions up and down) are gathered this long before one update goes out. */
const FLEET_DEBOUNCE_MS = 500;

export interface RouteOptions {
  sessionTtlMs: number;
  /** Registers an open event stream (ended when the console stops). */
  track: (res: ServerResponse) => void;
  /** Calls `fn` when an agent connects or disconnects; returns the unsubscribe function. */
  onFleetChange: (fn: () => void) => () => void;
}

/** Every event stream line goes through here: one named event with a JSON payload. */
function sse(res: ServerResponse, event: string, data: unknown, eventId?: number): void {
  if (!res.writableEnded) res.write(`${eventId ? `id: ${eventId}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function openStream(res: ServerResponse, o: RouteOptions): () => void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
  o.track(res);
  // Something at once, so the browser sees the stream open (headers alone stay buffered until the first write).
  res.write('retry: 3000\n\n');
  const keepalive = setInterval(() => { if (!res.writableEnded) res.write(': keepalive\n\n'); }, KEEPALIVE_MS);
  return () => clearInterval(keepalive);
}

export function consoleRoutes(api: ConsoleApi, o: RouteOptions) {
  /** GET /login?token=…: spends the link, sets the session cookie, then goes to the fleet page. */
  async function login(res: ServerResponse, url: URL, auth: BrowserAuth): Promise<void> {
    let opened;
    try {
      opened = await auth.sessions.consumeLogin(url.searchParams.get('token') ?? '', o.sessionTtlMs, Date.now());
    } catch (err) {
      const fe = err as FerryError;
      sendHtml(res, bare('Login link refused', html`<p class="error" data-testid="login-error">${fe.message}</p><p>${fe.hint ?? ''}</p>`), 401);
      return;
    }
    const { sessionId, session } = opened;
    res.setHeader('Set-Cookie', `${SESSION_COOKIE}=${sessionId}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(o.sessionTtlMs / 1000)}`);
    // A page that moves on, not a 303: a Strict cookie set while arriving from another app is then sent on the same-site step.
    res.setHeader('Refresh', '0; url=/fleet');
    sendHtml(res, bare('Logged in', html`<p>Signed in as <strong>${session.operator}</strong> (${session.role}) until ${new Date(session.expiresAt).toISOString()}.</p>
<p><a href="/fleet">Continue to the console</a></p>`));
  }

  async function fleet(res: ServerResponse, url: URL, who: Browser): Promise<void> {
    const state = url.searchParams.get('state') ?? '';
    const selector = (url.searchParams.get('selector') ?? '').trim();
    const q = (url.searchParams.get('q') ?? '').trim().toLowerCase();
    const all = await api.agents(who);
    let selectorError = '';
    let sel: ReturnType<typeof parseSelector> | undefined;
    try {
      sel = parseSelector(selector);
    } catch (err) {
      selectorError = `labels: ${(err as Error).message}`;
    }
    const matching = all.filter((a) => (!AGENT_STATES.includes(state as AgentState) || agentState(a) === state)
      && (!sel || sel.matches(Object.fromEntries(a.labels.map((l) => [l.key, l.value]))))
      && (!q || a.hostname.toLowerCase().includes(q) || a.id.includes(q)));
    matching.sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id));
    sendHtml(res, fleetPage(all, selectorError ? [] : matching, { state, selector, q, page: Number(url.searchParams.get('page') ?? 1) || 1 }, who, selectorError));
  }

  async function host(res: ServerResponse, idOrName: string, who: Browser): Promise<void> {
    const all = await api.agents(who);
    const matches = all.filter((a) => a.id === idOrName || a.hostname === idOrName);
    if (matches.length !== 1) {
      throw new FerryError(ErrorCode.NotFound, matches.length ? `${matches.length} agents are called ${idOrName}` : `no agent ${idOrName}`,
        matches.length ? 'open it by its agent id from the fleet page' : 'see the fleet page');
    }
    const a = matches[0]!;
    sendHtml(res, hostPage(a, await api.jobs(who, 50, a.id), who));
  }

  /** GET /rollouts/ID/events: the Watch stream as server-sent events; Last-Event-ID resumes after that event. */
  function events(req: IncomingMessage, res: ServerResponse, id: string, who: Browser): void {
    const after = Number(req.headers['last-event-id'] ?? 0) || 0;
    const stop = openStream(res, o);
    const stream = api.watch(who, id, after, (u) => {
      if (u.update?.$case === 'snapshot') sse(res, 'snapshot', { html: rolloutLive(u.update.value, who).text, state: u.update.value.info?.state });
      else if (u.update?.$case === 'event') sse(res, 'event', { html: eventItem(u.update.value).text }, u.update.value.seq);
    });
    res.on('close', () => { stop(); stream.cancel(); });
    stream.done.then(
      () => { sse(res, 'end', {}); res.end(); },
      (err: FerryError) => { sse(res, 'failure', { code: err.code, message: err.message }); res.end(); },
    ).finally(stop);
  }

  /**
   * GET /fleet/events: when agents connect or disconnect, the counts by
   * state and every host's state, read again through ListAgents (so a
   * session that ended stops the stream with its refusal).
   */
  function fleetEvents(res: ServerResponse, who: Browser): void {
    const stop = openStream(res, o);
    let timer: NodeJS.Timeout | undefined;
    const push = () => {
      timer = undefined;
      api.agents(who).then((all) => {
        const counts = Object.fromEntries(AGENT_STATES.map((s) => [s, all.filter((a) => agentState(a) === s).length]));
        sse(res, 'fleet', { counts, total: all.length, states: Object.fromEntries(all.map((a) => [a.id, agentState(a)])) });
      }, (err: FerryError) => { sse(res, 'failure', { code: err.code, message: err.message }); res.end(); });
    };
    const unsubscribe = o.onFleetChange(() => { timer ??= setTimeout(push, FLEET_DEBOUNCE_MS); });
    res.on('close', () => { stop(); unsubscribe(); if (timer) clearTimeout(timer); });
  }

  async function act(req: IncomingMessage, res: ServerResponse, id: string, action: RolloutAction, who: Browser): Promise<void> {
    const body = await readJson(req);
    const reason = typeof body['reason'] === 'string' ? body['reason'] : '';
    const hosts = Array.isArray(body['hosts']) ? body['hosts'].filter((h): h is string => typeof h === 'string') : [];
    const info = await api.act(who, id, action, { reason, hosts });
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: info.id, state: info.state, paused: info.paused }));
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL, who: Browser, auth: BrowserAuth): Promise<void> {
    const path = url.pathname;
    const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (req.method === 'POST') {
      if (seg[0] === 'rollouts' && seg.length === 3 && (ROLLOUT_ACTIONS as readonly string[]).includes(seg[2]!)) {
        return act(req, res, seg[1]!, seg[2] as RolloutAction, who);
      }
      if (path === '/logout') {
        await auth.sessions.endSession(auth.sessionId(req));
        res.setHeader('Set-Cookie', `${SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
        return;
      }
      throw new FerryError(ErrorCode.NotFound, `no action ${path}`);
    }
    if (req.method !== 'GET') throw new FerryError(ErrorCode.InvalidArgument, `${req.method} is not served here`);
    if (path === '/' || path === '/fleet') return fleet(res, url, who);
    if (path === '/fleet/events') return fleetEvents(res, who);
    if (seg[0] === 'hosts' && seg.length === 2) return host(res, seg[1]!, who);
    if (path === '/rollouts') return sendHtml(res, rolloutsPage(await api.rolloutList(who, 200), who));
    if (seg[0] === 'rollouts' && seg.length === 2) return sendHtml(res, rolloutPage(await api.rollout(who, seg[1]!), who));
    if (seg[0] === 'rollouts' && seg[2] === 'events' && seg.length === 3) return events(req, res, seg[1]!, who);
    if (seg[0] === 'rollouts' && seg[2] === 'logs' && seg.length === 3) {
      const h = url.searchParams.get('host') ?? '';
      return sendHtml(res, rolloutLogsPage(seg[1]!, h, await api.rolloutLogs(who, seg[1]!, h), who));
    }
    if (path === '/bundles') return sendHtml(res, bundlesPage(await api.bundles(who), await api.plans(who), who));
    if (path === '/jobs') {
      const kind = url.searchParams.get('kind') ?? '';
      return sendHtml(res, jobsPage(await api.jobs(who, 200, '', kind), kind, who));
    }
    if (seg[0] === 'jobs' && seg.length === 2) return sendHtml(res, jobPage(await api.job(who, seg[1]!), who));
    if (seg[0] === 'jobs' && seg[2] === 'logs' && seg.length === 3) {
      const h = url.searchParams.get('host') ?? '';
      return sendHtml(res, jobLogsPage(seg[1]!, h, await api.jobLogs(who, seg[1]!, h), who));
    }
    throw new FerryError(ErrorCode.NotFound, `no page ${path}`, 'start from /fleet');
  }

  return { login, route };
}
