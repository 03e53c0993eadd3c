/**
 * The files repository: every file of a published bundle, read-only, at
 * `/files/<bundle>/<version>/<path>` (a layout Kubespray's `files_repo`
 * points at when the bundle mirrors the upstream URLs). Range, ETag (the
 * file's sha256), Last-Modified (the bundle's commit time), If-None-Match,
 * If-Modified-Since and If-Range; a JSON listing and plain HTML index pages.
 * Paths are matched exactly against the signed manifest, so nothing but a
 * bundle file can be reached; traversal attempts are refused outright.
 */
import { decideRange } from '../../../common/src/registry/byte-range.js';
import { RegistryError } from '../../../common/src/registry/http-error.js';
import { fileSegments } from '../../../common/src/registry/file-paths.js';
import type { IndexedBundleFile } from './bundle-bytes.js';
import type { RegistryDeps, RegistryRequest } from './request.js';
import type { Publication } from './registry-store.js';

const unauthorized = () => new RegistryError(401, 'UNAUTHORIZED',
  'a client certificate of this fleet is required (curl --cert/--key, wget --certificate/--private-key), unless the bundle is published with --anonymous');

/** Handles a request under /files. */
export async function handleFiles(r: RegistryRequest, deps: RegistryDeps): Promise<void> {
  const { segments, dir } = fileSegments(r.path);
  const anon = r.client.kind === 'anonymous';
  if (segments.length < 2) {
    if (segments.length === 1) throw new RegistryError(404, 'NOT_FOUND', `say the version too: /files/${segments[0]}/<version>/`);
    const pubs = (await deps.store.list()).filter((p) => !anon || p.anonymous);
    if (anon && pubs.length === 0) throw unauthorized();
    return json(r, { bundles: pubs.map((p) => ({ name: p.bundleName, version: p.bundleVersion, url: `/files/${enc(p.bundleName)}/${enc(p.bundleVersion)}/` })) });
  }
  const [name, version, ...rel] = segments as [string, string, ...string[]];
  const pub = await deps.store.publicationByName(name, version);
  if (anon && !pub?.anonymous) throw unauthorized();
  if (!pub) throw new RegistryError(404, 'NOT_FOUND', `bundle ${name}:${version} is not published; see \`ferry registry ls\``);
  const cached = await deps.bytes.bundle(pub.bundleId);
  if (!cached) throw new RegistryError(404, 'NOT_FOUND', `bundle ${name}:${version} is gone`);
  const relPath = rel.join('/');
  const file = dir ? undefined : cached.files.get(relPath);
  if (file) return sendFile(r, deps, pub, cached.bundle.createdAt, file);
  const prefix = relPath === '' ? '' : `${relPath}/`;
  const under = [...cached.files.values()].filter((f) => f.file.path.startsWith(prefix));
  if (under.length === 0) throw new RegistryError(404, 'NOT_FOUND', `${name}:${version} has no file or directory ${relPath}`);
  if (!dir) {
    // A directory asked for without its slash: relative links on its index page need one.
    const to = `${r.path}/`;
    r.res.writeHead(301, { Location: to, 'Content-Length': 0 });
    r.res.end();
    return;
  }
  const base = `/files/${enc(name)}/${enc(version)}/`;
  const wantsJson = r.query.get('format') === 'json' || (/application\/json/.test(r.headers.accept ?? '') && !/text\/html/.test(r.headers.accept ?? ''));
  if (wantsJson) {
    return json(r, {
      bundle: name, version, files: under.map((f) => ({
        path: f.file.path, size: f.file.size, sha256: f.file.sha256, mode: `0${f.file.mode.toString(8)}`, url: base + f.file.path.split('/').map(enc).join('/'),
      })),
    });
  }
  const entries = new Map<string, number | undefined>();
  for (const f of under) {
    const restPath = f.file.path.slice(prefix.length);
    const slash = restPath.indexOf('/');
    if (slash < 0) entries.set(restPath, f.file.size);
    else entries.set(`${restPath.slice(0, slash)}/`, undefined);
  }
  const rows = [...entries].sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, size]) =>
    `<a href="${html(n.endsWith('/') ? `${enc(n.slice(0, -1))}/` : enc(n))}">${html(n)}</a>${size === undefined ? '' : ` ${size}`}`);
  const body = `<!DOCTYPE html>\n<html><head><title>${html(`${name} ${version} /${relPath}`)}</title></head><body>\n<h1>${html(`${name}:${version} /${relPath}`)}</h1>\n<pre>\n${relPath ? '<a href="../">../</a>\n' : ''}${rows.join('\n')}\n</pre>\n</body></html>\n`;
  r.res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  r.res.end(r.head ? undefined : body);
}

async function sendFile(r: RegistryRequest, deps: RegistryDeps, pub: Pick<Publication, 'bundleId'>, createdAt: number, f: IndexedBundleFile): Promise<void> {
  const etag = `"${f.file.sha256}"`;
  const modified = Math.floor(createdAt / 1000) * 1000;
  const base = {
    ETag: etag, 'Last-Modified': new Date(modified).toUTCString(), 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-cache',
  };
  const inm = r.headers['if-none-match'];
  const ims = r.headers['if-modified-since'];
  const notModified = inm !== undefined
    ? inm.split(',').map((t) => t.trim().replace(/^W\//, '')).some((t) => t === etag || t === '*')
    : ims !== undefined && Number.isFinite(Date.parse(ims)) && Date.parse(ims) >= modified;
  if (notModified) {
    r.res.writeHead(304, base);
    r.res.end();
    return;
  }
  const size = f.file.size;
  const ifRange = r.headers['if-range'];
  const range = ifRange !== undefined && ifRange !== etag && ifRange !== base['Last-Modified'] ? undefined : r.headers.range;
  const decision = decideRange(range, size);
  if (decision.kind === 'unsatisfiable') {
    throw new RegistryError(416, 'RANGE_INVALID', `range ${range} is outside the file (${size} bytes)`, { 'Content-Range': `bytes */${size}` });
  }
  const { start, end } = decision.kind === 'partial' ? decision.range : { start: 0, end: size - 1 };
  const status = decision.kind === 'partial' ? 206 : 200;
  const headers = {
    ...base, 'Content-Type': 'application/octet-stream', 'Content-Length': end - start + 1,
    ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
  };
  if (r.head) {
    r.res.writeHead(status, headers);
    r.res.end();
    return;
  }
  const sent = await r.sendRange(pub.bundleId, f, start, end, () => r.res.writeHead(status, headers));
  deps.metrics.registryPull('file', status, sent);
}

function json(r: RegistryRequest, v: unknown): void {
  const body = JSON.stringify(v);
  r.res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  r.res.end(r.head ? undefined : body);
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function html(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
