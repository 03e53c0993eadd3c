import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertBundleConfig, globToRegExp, loadBundleConfig, parseBundleConfig } from '../../../common/src/bundle/bundle-config.js';
import { FerryError } from '../../../common/src/errors.js';

const problemsOf = (text: string) => parseBundleConfig(text).problems.map((p) => `${p.line}:${p.col} ${p.message}`);

describe('bundle/bundle-config (ferry-bundle.yaml)', () => {
  it('parses every field', () => {
    const { config, problems } = parseBundleConfig(`
name: kubeedge-cloud
version: 1.10          # plain scalar: stays "1.10", not 1.1
arch: [amd64, arm64, arm/v7]
rewrites:
  - from: docker.io/sealerio/
    to: sea.hub:5000/sealerio/
  - {from: nginx, to: "sea.hub:5000/library/nginx"}
lint:
  internalHosts: [Files.Site.Internal, "*.corp.example", "10.0.0.5:8080", "[fd00::1]:5000"]
  ignore:
    - path: bin/install-k3s.sh
      rules: [network-url, network-command]
    - path: "legacy/**"
`);
    assert.deepEqual(problems, []);
    assert.deepEqual(config, {
      name: 'kubeedge-cloud',
      version: '1.10',
      arch: ['amd64', 'arm64', 'arm/v7'],
      rewrites: [{ from: 'docker.io/sealerio/', to: 'sea.hub:5000/sealerio/' }, { from: 'nginx', to: 'sea.hub:5000/library/nginx' }],
      lint: {
        internalHosts: ['files.site.internal', '*.corp.example', '10.0.0.5:8080', '[fd00::1]:5000'],
        ignore: [{ path: 'bin/install-k3s.sh', rules: ['network-url', 'network-command'] }, { path: 'legacy/**' }],
      },
    });
  });

  it('reports every problem at once, each with line:col, in file order', () => {
    assert.deepEqual(problemsOf(`name: Kube Edge
version: [1]
arch: [x86_64, amd64, sparc]
rewrite:
  - from: a/
rewrites:
  - from: docker.io/sealerio/
    to: sea.hub:5000/sealerio
  - from: docker.io/sealerio/
    to: sea.hub:5000/sealerio/
  - from: sealerio/
    to: other/
  - from: "Bad Ref!"
    to: x
  - to: only-to
lint:
  internalHosts: ["https://mirror.example.com/"]
  ignore:
    - path: x
      rules: [image-missin]
    - rules: [image-tag]
  extra: 1
`), [
      '1:7 name "Kube Edge" is not valid: use lowercase letters, digits, ".", "_" and "-" (at most 63, starting with a letter or digit)',
      '2:10 version must be a string',
      '3:8 unknown architecture "x86_64" (did you mean amd64?); use image platform names: amd64, arm64, arm, 386, ppc64le, s390x, riscv64, mips64le, loong64',
      '3:23 unknown architecture "sparc"; use image platform names: amd64, arm64, arm, 386, ppc64le, s390x, riscv64, mips64le, loong64',
      '4:1 unknown key "rewrite" in ferry-bundle.yaml (allowed: name, version, arch, rewrites, lint)',
      '7:5 rewrite rule: "from" and "to" must both end with "/" (a namespace prefix) or both name a repository',
      '11:5 rewrite rule for "sealerio/" repeats an earlier rule (the first matching rule wins)',
      '13:5 rewrite rule: "from" "Bad Ref!" is not a repository (with an optional tag); end it with "/" for a prefix',
      '15:5 a rewrite rule needs both "from" and "to"',
      '17:19 internal host "https://mirror.example.com/" is not valid: use host, host:port, *.domain or [ipv6]:port (no scheme, no path)',
      '20:15 unknown lint rule "image-missin" (rules: image-missing, image-unresolved, image-invalid, image-tag, bundle-path-missing, network-url, network-command, network-unresolved, yaml-invalid, config-invalid)',
      '21:7 a lint.ignore entry needs "path" (a glob such as "scripts/**/*.sh")',
      '22:3 unknown key "extra" in lint (allowed: internalHosts, ignore)',
    ]);
  });

  it('reports YAML syntax errors and duplicate keys with positions', () => {
    assert.deepEqual(problemsOf('name: a\nrewrites: [\n'), ['3:1 Flow sequence in block collection must be sufficiently indented and end with a ]']);
    assert.deepEqual(problemsOf('name: a\nname: b\n'), ['2:1 Map keys must be unique']);
    assert.deepEqual(problemsOf('- just\n- a list\n'), ['1:1 expected a mapping with name, version, arch, rewrites, lint']);
    assert.deepEqual(problemsOf(''), []);
  });

  it('a missing file is an empty config; assertBundleConfig throws one error listing all problems', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-cfg-'));
    try {
      const none = await loadBundleConfig(dir);
      assert.deepEqual(none, { config: { rewrites: [], lint: { internalHosts: [], ignore: [] } }, problems: [], found: false });
      await writeFile(join(dir, 'ferry-bundle.yaml'), 'name: ok\nbogus: 1\narch: amd64\n');
      const r = await loadBundleConfig(dir);
      assert.equal(r.found, true);
      assert.throws(() => assertBundleConfig(r), (e: unknown) => {
        assert.ok(e instanceof FerryError);
        assert.equal(e.code, 'CONFIG');
        assert.equal(e.message, '2 problems in ferry-bundle.yaml:\n  ferry-bundle.yaml:2:1: unknown key "bogus" in ferry-bundle.yaml (allowed: name, version, arch, rewrites, lint)\n  ferry-bundle.yaml:3:7: arch must be a list');
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('globs: * and ? within a segment, ** across segments', () => {
    const cases: Array<[string, string, boolean]> = [
      ['bin/install-k3s.sh', 'bin/install-k3s.sh', true],
      ['bin/*.sh', 'bin/install-k3s.sh', true],
      ['bin/*.sh', 'bin/sub/x.sh', false],
      ['**/*.sh', 'x.sh', true],
      ['**/*.sh', 'a/b/c.sh', true],
      ['legacy/**', 'legacy', true],
      ['legacy/**', 'legacy/a/b.yaml', true],
      ['legacy/**', 'legacyx/a', false],
      ['a?c', 'abc', true],
      ['a?c', 'a/c', false],
      ['charts/x.tgz', 'charts/x.tgz', true],
      ['a.b', 'axb', false],
    ];
    for (const [g, p, want] of cases) assert.equal(globToRegExp(g).test(p), want, `${g} vs ${p}`);
  });
});
