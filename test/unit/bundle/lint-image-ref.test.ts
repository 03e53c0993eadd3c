import assert from 'node:assert/strict';
import {
  type CompiledRewrite, canonicalImageRef, compileRewrite, formatImageRef, parseImageRef, rewriteImageRef, rewriteTargetHosts,
} from '../../../common/src/bundle/lint/image-ref.js';

const norm = (s: string) => {
  const r = parseImageRef(s);
  return r ? formatImageRef(r) : undefined;
};
function rules(...pairs: Array<[string, string]>): CompiledRewrite[] {
  return pairs.map(([from, to]) => {
    const c = compileRewrite({ from, to });
    assert.ok(typeof c !== 'string', `${from} -> ${to}: ${String(c)}`);
    return c;
  });
}
const rw = (ref: string, rs: CompiledRewrite[]) => formatImageRef(rewriteImageRef(parseImageRef(ref)!, rs));

describe('bundle/lint/image-ref', () => {
  it('normalises like docker/containerd: docker.io, library/, registry detection', () => {
    const cases: Array<[string, string | undefined]> = [
      ['nginx', 'docker.io/library/nginx'],
      ['nginx:1.25', 'docker.io/library/nginx:1.25'],
      ['library/nginx:1.25', 'docker.io/library/nginx:1.25'],
      ['docker.io/nginx:1.25', 'docker.io/library/nginx:1.25'],
      ['index.docker.io/library/nginx:1.25', 'docker.io/library/nginx:1.25'],
      ['sealerio/lvscare:v1.1.3-beta.8', 'docker.io/sealerio/lvscare:v1.1.3-beta.8'],
      ['sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8', 'sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8'],
      ['localhost/app:1', 'localhost/app:1'],
      ['localhost:5000/app', 'localhost:5000/app'],
      ['Registry/app:1', 'Registry/app:1'], // an upper-case first component can only be a host
      ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10'],
      [`quay.io/a/b@sha256:${'a'.repeat(64)}`, `quay.io/a/b@sha256:${'a'.repeat(64)}`],
      [`nginx:1.25@sha256:${'b'.repeat(64)}`, `docker.io/library/nginx:1.25@sha256:${'b'.repeat(64)}`],
      ['[fd00::1]:5000/app:1', '[fd00::1]:5000/app:1'],
      ['  nginx:1  ', 'docker.io/library/nginx:1'],
      ['Nginx:1', undefined],
      ['nginx:', undefined],
      ['$IMAGE', undefined],
      ['{{ .Values.image }}', undefined],
      ['a//b', undefined],
      ['nginx@sha256:short', undefined],
      ['', undefined],
    ];
    for (const [input, want] of cases) assert.equal(norm(input), want, JSON.stringify(input));
    assert.equal(formatImageRef(canonicalImageRef(parseImageRef('nginx')!)), 'docker.io/library/nginx:latest');
    assert.equal(formatImageRef(canonicalImageRef(parseImageRef(`nginx@sha256:${'c'.repeat(64)}`)!)), `docker.io/library/nginx@sha256:${'c'.repeat(64)}`);
  });

  it('prefix rules match at a path boundary, after normalising both sides (seed 003)', () => {
    const r = rules(['docker.io/sealerio/', 'sea.hub:5000/sealerio/']);
    assert.equal(rw('sealerio/lvscare:v1.1.3-beta.8', r), 'sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8');
    assert.equal(rw('docker.io/sealerio/lvscare:v1.1.3-beta.8', r), 'sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8');
    assert.equal(rw('sealerio/lvscare', r), 'sea.hub:5000/sealerio/lvscare:latest');
    assert.equal(rw('sealerio-x/lvscare:1', r), 'docker.io/sealerio-x/lvscare:1', 'no match across a component boundary');
    assert.equal(rw('quay.io/sealerio/lvscare:1', r), 'quay.io/sealerio/lvscare:1', 'other registries are untouched');
    assert.equal(rw('sea.hub:5000/sealerio/lvscare:1', r), 'sea.hub:5000/sealerio/lvscare:1');
    const d = `sha256:${'d'.repeat(64)}`;
    assert.equal(rw(`sealerio/lvscare@${d}`, r), `sea.hub:5000/sealerio/lvscare@${d}`, 'digests are kept');
    // `sealerio/` without a registry means Docker Hub's sealerio namespace, same rule.
    assert.deepEqual(rules(['sealerio/', 'sea.hub:5000/sealerio/'])[0], { ...r[0], rule: { from: 'sealerio/', to: 'sea.hub:5000/sealerio/' } });
  });

  it('registry-wide rules, library images, repository and tag rules; first match wins', () => {
    const r = rules(
      ['nginx:1.25', 'sea.hub:5000/web/nginx:1.25-patched'],
      ['docker.io/library/busybox', 'sea.hub:5000/tools/busybox'],
      ['docker.io/', 'mirror.site:5000/dockerhub/'],
      ['quay.io/', 'mirror.site:5000/quay/'],
    );
    assert.equal(rw('nginx:1.25', r), 'sea.hub:5000/web/nginx:1.25-patched');
    assert.equal(rw('nginx:1.26', r), 'mirror.site:5000/dockerhub/library/nginx:1.26', 'tag rule does not match another tag');
    assert.equal(rw('busybox:1.37', r), 'sea.hub:5000/tools/busybox:1.37', 'repository rule keeps the tag');
    assert.equal(rw('kubeedge/cloudcore:v1.22.0', r), 'mirror.site:5000/dockerhub/kubeedge/cloudcore:v1.22.0');
    assert.equal(rw('quay.io/coreos/etcd:v3.5', r), 'mirror.site:5000/quay/coreos/etcd:v3.5');
    assert.equal(rw('registry.k8s.io/pause:3.10', r), 'registry.k8s.io/pause:3.10');
    assert.deepEqual(rewriteTargetHosts(r), ['sea.hub:5000', 'sea.hub:5000', 'mirror.site:5000', 'mirror.site:5000']);
  });

  it('rejects malformed rules with a reason', () => {
    assert.match(String(compileRewrite({ from: 'docker.io/sealerio/', to: 'sea.hub:5000/sealerio' })), /both end with "\/"/);
    assert.match(String(compileRewrite({ from: 'bad_/', to: 'x/' })), /^"from" "bad_\/" is not a registry or namespace prefix/);
    assert.match(String(compileRewrite({ from: 'a/', to: 'https://x/' })), /^"to" .* is not a registry or namespace prefix/);
    assert.match(String(compileRewrite({ from: `nginx@sha256:${'a'.repeat(64)}`, to: 'x' })), /is not a repository/);
  });
});
