/**
 * Where the controller keeps its store: the embedded SQLite file in the
 * data directory (the default), or a PostgreSQL database shared by several
 * replicas (`--store postgres://user:pass@host:5432/ferry`). The URL may
 * carry a password, so everything that shows it (logs, errors, status)
 * uses `display`, never `url`.
 */
export type StoreLocation =
  | { kind: 'sqlite'; display: string }
  | { kind: 'postgres'; url: string; display: string };

/** Parses a --store value; returns problems as sentences (for the one config error). */
export function parseStoreUrl(raw: string | undefined): { store?: StoreLocation; problem?: string } {
  const v = (raw ?? '').trim();
  if (v === '' || v === 'sqlite') return { store: { kind: 'sqlite', display: 'sqlite (DATA/ferry.db)' } };
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return { problem: `store "${redactStoreUrl(v)}" is not a URL: use sqlite (the default) or postgres://USER:PASSWORD@HOST:PORT/DATABASE` };
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    return { problem: `store "${redactStoreUrl(v)}" has scheme ${u.protocol.replace(/:$/, '')}: use sqlite (the default) or postgres://USER:PASSWORD@HOST:PORT/DATABASE` };
  }
  if (!u.hostname && !u.searchParams.get('host')) return { problem: `store "${redactStoreUrl(v)}" names no host: postgres://USER:PASSWORD@HOST:PORT/DATABASE` };
  if (u.pathname.replace(/^\//, '') === '') return { problem: `store "${redactStoreUrl(v)}" names no database: postgres://USER:PASSWORD@HOST:PORT/DATABASE` };
  return { store: { kind: 'postgres', url: v, display: redactStoreUrl(v) } };
}

/** The URL with its password (in the user part or a password= parameter) replaced by ***. */
export function redactStoreUrl(raw: string): string {
  // Greedy to the last @ of the authority: a password with an unencoded @ is still hidden whole.
  let s = raw.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@?#]*):[^/?#]*@/i, '$1:***@');
  s = s.replace(/([?&]password=)[^&#]*/gi, '$1***');
  return s;
}
