import assert from 'node:assert/strict';
import { releaseArch, releaseName, releaseProblem } from '../../../common/src/bundle/agent-release.js';
import type { BundleManifest } from '../../../common/src/bundle/manifest.js';
import { parseRolloutSpec } from '../../../controller/src/rollouts/spec.js';

const release = (version: string, over: Partial<BundleManifest> = {}): BundleManifest => ({
  schema: 'ferry.bundle/v1', name: releaseName('amd64'), version, arch: ['amd64'], createdAt: new Date(0).toISOString(),
  files: [{ path: 'ferry-agent', mode: 0o755, size: 1, sha256: 'a'.repeat(64), chunks: [{ digest: 'a'.repeat(64), size: 1 }] }],
  images: [], rewrites: [], ...over,
});

describe('agent releases: names and the version rules at the controller', () => {
  it('names a release per architecture and tells release names from others', () => {
    assert.equal(releaseName('arm64'), 'ferry-agent-linux-arm64');
    assert.equal(releaseArch('ferry-agent-linux-arm64'), 'arm64');
    assert.equal(releaseArch('kubeedge-edge'), undefined);
    assert.equal(releaseProblem({ ...release('9.9.9'), name: 'kubeedge-edge' }), undefined, 'other bundles are not releases');
  });

  it('accepts the controller\'s minor version and the one before; refuses newer and older, with what to do', () => {
    assert.equal(releaseProblem(release('0.3.0'), '0.3.2'), undefined);
    assert.equal(releaseProblem(release('0.2.7'), '0.3.2'), undefined);
    assert.equal(releaseProblem(release('0.3.2-rc.1'), '0.3.2'), undefined, 'a pre-release of the controller\'s version is older');
    const old = releaseProblem(release('0.1.9'), '0.3.2')!;
    assert.match(old.message, /agent release 0\.1\.9 is too old for this controller \(0\.3\.2\)/);
    assert.match(old.hint, /add a release of 0\.3\.2/);
    assert.match(releaseProblem(release('0.3.3'), '0.3.2')!.message, /newer than this controller/);
    assert.match(releaseProblem(release('1.3.0'), '1.3.0-rc.2')!.message, /newer than this controller/);
    assert.match(releaseProblem(release('0.3.0'), '1.3.0')!.message, /too old/);
  });
});

describe('rollout spec: upgrade:', () => {
  it('reads an agent upgrade instead of a plan', () => {
    const { spec, problems } = parseRolloutSpec('upgrade: { version: 0.2.0, retryFailed: true, connectWindow: 30s }\ntargets: { selector: ring=canary }\n', 'u.yaml');
    assert.deepEqual(problems, []);
    assert.deepEqual([spec!.name, spec!.plan, spec!.upgrade], ['agent-0.2.0', '', { version: '0.2.0', retryFailed: true, connectWindowMs: 30_000 }]);
  });

  it('reports every problem of an upgrade spec at once', () => {
    const { spec, problems } = parseRolloutSpec('plan: p\nparams: { a: 1 }\nupgrade: { version: latest, connectWindow: 1s, retry: true }\ntargets: { selector: "" }\n', 'u.yaml');
    assert.equal(spec, undefined);
    const text = problems.map((p) => `${p.line}:${p.col}: ${p.message}`).join('\n');
    assert.match(text, /1:1: a rollout has plan: or upgrade:, not both/);
    assert.match(text, /2:1: an agent upgrade takes no params:/);
    assert.match(text, /upgrade.version "latest" is not a version/);
    assert.match(text, /upgrade.connectWindow must be between 5s and 1h/);
    assert.match(text, /upgrade: unknown key "retry"/);
  });
});
