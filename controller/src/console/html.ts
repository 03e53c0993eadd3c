/**
 * HTML building blocks of the console. Every value from the store or a
 * host goes through `esc` (or the `html` tag, which escapes interpolations);
 * only strings built here are trusted as markup.
 */

/** Markup that is already safe to insert. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Template tag: interpolated values are escaped unless they are Html (or arrays of Html). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    if (v instanceof Html) out += v.text;
    else if (Array.isArray(v)) out += v.map((x) => (x instanceof Html ? x.text : esc(x))).join('');
    else if (v !== undefined && v !== null && v !== false) out += esc(v);
    out += strings[i + 1]!;
  });
  return new Html(out);
}

/** A time as UTC "2026-12-02 12:05:11", or "-" for 0. */
export function when(ms: number | undefined): string {
  if (!ms) return '-';
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

/** "3m ago", "in 2d": how far `ms` is from `now`, for last-seen and expiry columns. */
export function ago(ms: number, now = Date.now()): string {
  if (!ms) return 'never';
  const d = Math.abs(now - ms);
  const unit = d < 60_000 ? `${Math.round(d / 1000)}s` : d < 3_600_000 ? `${Math.round(d / 60_000)}m` : d < 86_400_000 ? `${Math.round(d / 3_600_000)}h` : `${Math.round(d / 86_400_000)}d`;
  return ms <= now ? `${unit} ago` : `in ${unit}`;
}

/** A state word with a colour class (the stylesheet maps state names to colours). */
export function badge(state: string, title = ''): Html {
  return html`<span class="badge s-${state.replace(/[^a-z-]/g, '')}" title="${title}">${state}</span>`;
}

export function link(href: string, text: string): Html {
  return html`<a href="${href}">${text}</a>`;
}

/** Query string from defined, non-empty values. */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Who is looking, for the page header and the action buttons. */
export interface Viewer {
  operator: string;
  role: 'viewer' | 'admin';
  csrf: string;
}

const NAV: Array<[string, string]> = [['/fleet', 'Fleet'], ['/rollouts', 'Rollouts'], ['/bundles', 'Bundles & plans'], ['/jobs', 'Jobs']];

/** The whole page around `body`. Scripts and styles come from /static only (the CSP allows nothing else). */
export function page(title: string, v: Viewer, current: string, body: Html): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="ferry-csrf" content="${v.csrf}"><meta name="ferry-role" content="${v.role}">
<title>${title} · Ferry</title><link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script></head>
<body><header><strong class="brand">Ferry</strong><nav>${NAV.map(([href, text]) => html`<a href="${href}" class="${current === href ? 'current' : ''}">${text}</a>`)}</nav>
<span class="who" data-testid="who">${v.operator} <span class="role">${v.role}</span> <button type="button" class="logout" data-logout>log out</button></span></header>
<main><h1>${title}</h1>${body}</main></body></html>`.text;
}

/** A page shown without a session (login errors, logged out). */
export function bare(title: string, body: Html): string {
  return html`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title} · Ferry</title>
<link rel="stylesheet" href="/static/console.css"></head><body><main class="bare"><h1>${title}</h1>${body}</main></body></html>`.text;
}
