import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyBundleConfig } from '../../../common/src/bundle/bundle-config.js';
import { lintBundle, publishedImagesFrom, type Finding, type PublishedImages } from '../../../common/src/bundle/lint/index.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const OTHER = `sha256:${'cd'.repeat(32)}`;
const POD = `apiVersion: v1
kind: Pod
metadata: {name: lvscare, namespace: kube-system}
spec:
  containers:
    - name: lvscare
      image: sealerio/lvscare:v1.1.3-beta.8
    - name: pinned
      image: registry.k8s.io/pause@${DIGEST}
`;
const brief = (fs: Finding[]) => fs.map((f) => `${f.line}:${f.col} ${f.rule}`);

describe('bundle/lint: images published in the site registry count as available', () => {
  let dir: string;
  const config = { ...emptyBundleConfig(), rewrites: [{ from: 'docker.io/sealerio/', to: 'sea.hub:5000/sealerio/' }] };
  const lint = (published?: PublishedImages) => lintBundle(dir, { config, manifest: { images: [] }, ...(published ? { published } : {}) });
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-lint-published-'));
    await writeFile(join(dir, 'lvscare.yaml'), POD);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('without a registry both images are missing from the bundle', async () => {
    const f = await lint();
    assert.deepEqual(brief(f), ['7:14 image-missing', '9:14 image-missing']);
    assert.doesNotMatch(f[0]!.message, /published/);
  });

  it('published under the rewritten name (tag) and in the right repository (digest): no finding', async () => {
    const registry = publishedImagesFrom([
      { repository: 'sea.hub:5000/sealerio/lvscare', tag: 'v1.1.3-beta.8', digest: OTHER },
      { repository: 'registry.k8s.io/pause', tag: '3.9', digest: OTHER, alsoDigests: [DIGEST] },
    ]);
    assert.deepEqual(await lint(registry), []);
  });

  it('published under the name before rewriting, another tag, or a digest in another repository: still missing', async () => {
    const registry = publishedImagesFrom([
      { repository: 'docker.io/sealerio/lvscare', tag: 'v1.1.3-beta.8', digest: OTHER },
      { repository: 'sea.hub:5000/sealerio/lvscare', tag: 'v1.1.3', digest: OTHER },
      { repository: 'quay.io/pause', tag: '3.9', digest: DIGEST },
    ]);
    const f = await lint(registry);
    assert.deepEqual(brief(f), ['7:14 image-missing', '9:14 image-missing']);
    assert.match(f[0]!.message, /^image sealerio\/lvscare:v1\.1\.3-beta\.8 is not in the bundle nor published in the site registry \(looked up as sea\.hub:5000\/sealerio\/lvscare:v1\.1\.3-beta\.8 after rewrite rules\)/);
    assert.match(f[1]!.hint!, /ferry registry publish NAME:VERSION/);
  });

  it('asks the registry once per distinct reference', async () => {
    await writeFile(join(dir, 'again.yaml'), POD);
    const asked: string[] = [];
    const registry: PublishedImages = {
      tagDigest: async (r, t) => { asked.push(`${r}:${t}`); return undefined; },
      hasManifest: async (r, d) => { asked.push(`${r}@${d.slice(0, 12)}`); return false; },
    };
    await lint(registry);
    await rm(join(dir, 'again.yaml'));
    assert.deepEqual(asked.sort(), ['registry.k8s.io/pause@sha256:ababa', 'sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8']);
  });
});
