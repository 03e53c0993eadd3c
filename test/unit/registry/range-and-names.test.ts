import assert from 'node:assert/strict';
import { decideRange } from '../../../common/src/registry/byte-range.js';
import { RegistryError } from '../../../common/src/registry/http-error.js';
import { checkName, resolveRepository, type RepositoryLookup } from '../../../common/src/registry/names.js';

function lookup(repos: string[]): RepositoryLookup {
  return {
    hasHost: async (h) => repos.some((r) => r.startsWith(`${h}/`)),
    exists: async (r) => repos.includes(r),
    byPath: async (p) => repos.filter((r) => r.slice(r.indexOf('/') + 1) === p),
  };
}

describe('registry Range decisions', () => {
  it('serves one range, suffixes and open ends, clamped to the size', () => {
    assert.deepEqual(decideRange('bytes=0-9', 100), { kind: 'partial', range: { start: 0, end: 9 } });
    assert.deepEqual(decideRange('bytes=90-', 100), { kind: 'partial', range: { start: 90, end: 99 } });
    assert.deepEqual(decideRange('bytes=-10', 100), { kind: 'partial', range: { start: 90, end: 99 } });
    assert.deepEqual(decideRange('bytes=-500', 100), { kind: 'partial', range: { start: 0, end: 99 } });
    assert.deepEqual(decideRange('bytes=50-5000', 100), { kind: 'partial', range: { start: 50, end: 99 } });
  });
  it('416 for a start past the end or an empty suffix; the whole body for anything malformed or multi-range', () => {
    for (const h of ['bytes=100-', 'bytes=100-200', 'bytes=-0']) assert.equal(decideRange(h, 100).kind, 'unsatisfiable', h);
    for (const h of [undefined, 'bytes=0-1,3-4', 'bytes=a-b', 'items=0-1', 'bytes=5-1', 'bytes=-', 'bytes=0x10-', ` bytes=${'9'.repeat(30)}-`]) {
      assert.equal(decideRange(h, 100).kind, 'full', String(h));
    }
  });
});

describe('registry names', () => {
  it('accepts the spec grammar and refuses traversal, upper case and encodings', () => {
    for (const ok of ['library/nginx', 'k8s/registry.k8s.io/kube-apiserver', 'a__b/c-d', 'a---b']) checkName(ok);
    for (const bad of ['../x', 'a/../b', 'a/%2e%2e', 'a%2fb', 'A/b', 'a//b', 'a/', '.a', 'a/b\0']) {
      assert.throws(() => checkName(bad), (e: RegistryError) => e.code === 'NAME_INVALID', bad);
    }
  });
  it('resolves by ns, then Host, then a host in the path, then docker.io, then the one registry that has the path', async () => {
    const l = lookup(['docker.io/ferry/hello', 'quay.io/ferry/hello', 'sea.hub:5000/sealerio/lvscare', 'registry.k8s.io/pause']);
    assert.equal(await resolveRepository('ferry/hello', 'quay.io', undefined, l), 'quay.io/ferry/hello');
    assert.equal(await resolveRepository('library/nginx', 'registry-1.docker.io', undefined, l), 'docker.io/library/nginx');
    assert.equal(await resolveRepository('sealerio/lvscare', undefined, 'sea.hub:5000', l), 'sea.hub:5000/sealerio/lvscare');
    assert.equal(await resolveRepository('registry.k8s.io/pause', undefined, '127.0.0.1:5000', l), 'registry.k8s.io/pause');
    assert.equal(await resolveRepository('ferry/hello', undefined, '127.0.0.1:5000', l), 'docker.io/ferry/hello');
    assert.equal(await resolveRepository('pause', undefined, undefined, l), 'registry.k8s.io/pause');
    assert.equal(await resolveRepository('nothing/here', undefined, undefined, l), undefined);
    await assert.rejects(resolveRepository('x', 'bad host!', undefined, l), (e: RegistryError) => e.code === 'NAME_INVALID');
    const twice = lookup(['quay.io/a/b', 'ghcr.io/a/b']);
    await assert.rejects(resolveRepository('a/b', undefined, undefined, twice), (e: RegistryError) => e.code === 'NAME_UNKNOWN' && /ns=/.test(e.message));
  });
});
