/**
 * The pull side of the OCI Distribution spec: `/v2/`, manifests and blobs by
 * tag or digest (GET and HEAD), blobs with Range, and tags/list with n/last
 * pagination. Bytes are sent exactly as stored; every success carries
 * Docker-Content-Digest, the exact Content-Length and the stored media type.
 */
import { checkDigest, checkName, classifyReference, resolveRepository } from '../../../common/src/registry/names.js';
import { decideRange } from '../../../common/src/registry/byte-range.js';
import { RegistryError } from '../../../common/src/registry/http-error.js';
import type { RegistryDeps, RegistryRequest } from './request.js';

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' };
const MANIFEST_ROUTE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const TAGS_ROUTE = /^\/v2\/(.+)\/tags\/list$/;
const MAX_TAGS_PAGE = 10_000;

const unauthorized = () => new RegistryError(401, 'UNAUTHORIZED',
  'a client certificate of this fleet is required (an agent\'s own, or an operator certificate): containerd hosts.toml client = [[crt, key]], skopeo --cert-dir, curl --cert',
  { 'WWW-Authenticate': 'Ferry realm="client certificate of the fleet CA"' });

/** Handles a request under /v2; throws RegistryError for every refusal. */
export async function handleV2(r: RegistryRequest, deps: RegistryDeps): Promise<void> {
  if (r.path === '/v2' || r.path === '/v2/') {
    if (r.client.kind === 'anonymous' && !(await deps.store.anyAnonymous())) throw unauthorized();
    const body = '{}';
    r.res.writeHead(200, { ...API_VERSION, 'Content-Type': 'application/json', 'Content-Length': body.length });
    r.res.end(r.head ? undefined : body);
    return;
  }
  const tags = TAGS_ROUTE.exec(r.path);
  const m = tags ? undefined : MANIFEST_ROUTE.exec(r.path);
  if (!tags && !m) throw new RegistryError(404, 'NOT_FOUND', `no such registry endpoint ${r.path.slice(0, 200)}; Ferry serves pulls only (docs/registry.md)`);
  const name = (tags ?? m)![1]!;
  checkName(name);
  const repository = await resolveRepository(name, r.query.get('ns') ?? undefined, r.host, deps.store);
  if (r.client.kind === 'anonymous' && !(repository && (await deps.store.anonymous(repository)))) throw unauthorized();
  if (!repository || !(await deps.store.exists(repository))) {
    throw new RegistryError(404, 'NAME_UNKNOWN', `repository ${name}${r.query.get('ns') ? ` (ns ${r.query.get('ns')})` : ''} is not published here; see \`ferry registry ls\``);
  }
  if (tags) return tagsList(r, deps, name, repository);
  if (m![2] === 'manifests') return manifest(r, deps, repository, m![3]!);
  return blob(r, deps, repository, m![3]!);
}

async function manifest(r: RegistryRequest, deps: RegistryDeps, repository: string, ref: string): Promise<void> {
  let digest = ref;
  if (classifyReference(ref) === 'tag') {
    const d = await deps.store.tagDigest(repository, ref);
    if (!d) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `no tag ${ref} in ${repository}`);
    digest = d;
  }
  const found = await deps.store.manifest(repository, digest);
  if (!found) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `no manifest ${digest} in ${repository}`);
  r.res.writeHead(200, {
    ...API_VERSION, 'Content-Type': found.mediaType, 'Content-Length': found.body.length, 'Docker-Content-Digest': digest, ETag: `"${digest}"`,
  });
  r.res.end(r.head ? undefined : found.body);
  if (!r.head) deps.metrics.registryPull('manifest', 200, found.body.length);
}

async function blob(r: RegistryRequest, deps: RegistryDeps, repository: string, digest: string): Promise<void> {
  checkDigest(digest);
  const loc = await deps.store.blob(repository, digest);
  if (!loc) {
    // A manifest is a blob too (the spec lets clients fetch it either way).
    const m = await deps.store.manifest(repository, digest);
    if (!m) throw new RegistryError(404, 'BLOB_UNKNOWN', `no blob ${digest} in ${repository}`);
    r.res.writeHead(200, { ...API_VERSION, 'Content-Type': 'application/octet-stream', 'Content-Length': m.body.length, 'Docker-Content-Digest': digest });
    r.res.end(r.head ? undefined : m.body);
    return;
  }
  const cached = await deps.bytes.bundle(loc.bundleId);
  const file = cached?.files.get(loc.file);
  if (!file) throw new RegistryError(404, 'BLOB_UNKNOWN', `blob ${digest} of ${repository} was unpublished`);
  const common = {
    ...API_VERSION, 'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': digest, 'Accept-Ranges': 'bytes', ETag: `"${digest}"`,
  };
  const decision = decideRange(r.headers.range, loc.size);
  if (decision.kind === 'unsatisfiable') {
    throw new RegistryError(416, 'RANGE_INVALID', `range ${r.headers.range} is outside the blob (${loc.size} bytes)`, { 'Content-Range': `bytes */${loc.size}` });
  }
  const { start, end } = decision.kind === 'partial' ? decision.range : { start: 0, end: loc.size - 1 };
  const status = decision.kind === 'partial' ? 206 : 200;
  const headers = { ...common, 'Content-Length': end - start + 1, ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${loc.size}` } : {}) };
  if (r.head) {
    r.res.writeHead(status, headers);
    r.res.end();
    return;
  }
  const sent = await r.sendRange(loc.bundleId, file, loc.offset + start, loc.offset + end, () => r.res.writeHead(status, headers));
  deps.metrics.registryPull('blob', status, sent);
}

async function tagsList(r: RegistryRequest, deps: RegistryDeps, name: string, repository: string): Promise<void> {
  const nText = r.query.get('n');
  let n = MAX_TAGS_PAGE;
  if (nText !== null) {
    if (!/^\d{1,9}$/.test(nText)) throw new RegistryError(400, 'PAGINATION_NUMBER_INVALID', `n=${nText.slice(0, 50)} is not a count`);
    n = Math.min(Number(nText), MAX_TAGS_PAGE);
  }
  const last = r.query.get('last') ?? undefined;
  const page = await deps.store.tags(repository, last, n + 1);
  const tags = page.slice(0, n);
  const headers: Record<string, string | number> = { ...API_VERSION, 'Content-Type': 'application/json' };
  if (page.length > n && tags.length > 0) {
    const q = new URLSearchParams({ n: String(n), last: tags[tags.length - 1]! });
    const ns = r.query.get('ns');
    if (ns) q.set('ns', ns);
    headers['Link'] = `</v2/${name}/tags/list?${q.toString()}>; rel="next"`;
  }
  const body = JSON.stringify({ name, tags });
  headers['Content-Length'] = Buffer.byteLength(body);
  r.res.writeHead(200, headers);
  r.res.end(r.head ? undefined : body);
}
