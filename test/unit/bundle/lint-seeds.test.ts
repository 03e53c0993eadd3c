/**
 * The seeds, reproduced as fixtures (test/fixtures/bundles/): lint must turn "we forgot 4
 * images" (seed 000) and "lvscare came from an online registry" (seed 003) into errors with
 * file:line:col, and pass the fixed packages clean.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { buildManifest } from '../../../common/src/bundle/builder.js';
import { emptyBundleConfig, loadBundleConfig } from '../../../common/src/bundle/bundle-config.js';
import { type Finding, formatFindings, lintBundle } from '../../../common/src/bundle/lint/index.js';
import { K3S_IMAGES, KUBEEDGE_IMAGES, LVSCARE_IMAGE, materializeFixture } from '../../fixtures/bundles/fixtures.js';

const brief = (fs: Finding[]) => fs.map((f) => `${f.file}:${f.line}:${f.col} ${f.severity} ${f.rule}`);

describe('bundle/lint: seeds', () => {
  const dirs: string[] = [];
  const fixture = async (...a: Parameters<typeof materializeFixture>) => {
    const d = await materializeFixture(...a);
    dirs.push(d);
    return d;
  };
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  describe('seed 000: KubeEdge cloud package with the k3s images only', () => {
    it('reports exactly the 4 missing KubeEdge images, at the values.yaml lines, naming keadm too', async () => {
      const dir = await fixture('seed-000-cloud', { images: K3S_IMAGES });
      const findings = await lintBundle(dir);
      assert.deepEqual(brief(findings), [
        'helm-charts/cloudcore/values.yaml:7:17 error image-missing',
        'helm-charts/cloudcore/values.yaml:15:17 error image-missing',
        'helm-charts/cloudcore/values.yaml:22:17 error image-missing',
        'helm-charts/cloudcore/values.yaml:28:17 error image-missing',
      ]);
      assert.deepEqual(findings.map((f) => /image (\S+) /.exec(f.message)![1]), KUBEEDGE_IMAGES.map((r) => r.replace('docker.io/', '')));
      for (const f of findings) assert.match(f.message, /is not in the bundle; also referenced at install\.sh:30$/);
      assert.equal(formatFindings(findings).split('\n').slice(0, 2).join('\n'),
        'helm-charts/cloudcore/values.yaml:7:17: error [image-missing] image kubeedge/cloudcore:v1.22.0 is not in the bundle; also referenced at install.sh:30\n'
        + '  hint: add an image tar with docker.io/kubeedge/cloudcore:v1.22.0 under images/ (on a connected machine: `docker save docker.io/kubeedge/cloudcore:v1.22.0 -o images/docker.io-kubeedge-cloudcore-v1.22.0.tar`), or a rewrite rule in ferry-bundle.yaml if the bundle has it under another registry');
    });

    it('without the chart in the package, `keadm init --kubeedge-version` alone implies the 4 images', async () => {
      const dir = await fixture('seed-000-cloud', { images: K3S_IMAGES });
      await rm(join(dir, 'helm-charts'), { recursive: true });
      const findings = await lintBundle(dir);
      assert.deepEqual(brief(findings), Array(4).fill('install.sh:30:1 error image-missing'));
      assert.deepEqual(findings.map((f) => f.message), [
        'image kubeedge/admission:v1.22.0 (deployed by `keadm init --kubeedge-version=v1.22.0`) is not in the bundle',
        'image kubeedge/cloudcore:v1.22.0 (deployed by `keadm init --kubeedge-version=v1.22.0`) is not in the bundle',
        'image kubeedge/controller-manager:v1.22.0 (deployed by `keadm init --kubeedge-version=v1.22.0`) is not in the bundle',
        'image kubeedge/iptables-manager:v1.22.0 (deployed by `keadm init --kubeedge-version=v1.22.0`) is not in the bundle',
      ]);
    });

    it('the fixed package (12 images) has no findings at all, also when checked against a built manifest', async () => {
      const dir = await fixture('seed-000-cloud', { images: [...K3S_IMAGES, ...KUBEEDGE_IMAGES] });
      assert.deepEqual(await lintBundle(dir), []);
      const manifest = await buildManifest(dir);
      assert.equal(manifest.images.length, 12);
      assert.deepEqual(await lintBundle(dir, { manifest }), []);
    });

    it('the lint.ignore rule is what keeps k3s\'s installer download code quiet', async () => {
      const dir = await fixture('seed-000-cloud', { images: [...K3S_IMAGES, ...KUBEEDGE_IMAGES] });
      const { config } = await loadBundleConfig(dir);
      const findings = await lintBundle(dir, { config: { ...config, lint: { ...config.lint, ignore: [] } } });
      assert.deepEqual(brief(findings), ['bin/install-k3s.sh:5:12 error network-url', 'bin/install-k3s.sh:11:5 warning network-unresolved']);
    });
  });

  describe('seed 003: lvscare served by sea.hub:5000', () => {
    it('passes with the rewrite rule docker.io/sealerio/ → sea.hub:5000/sealerio/', async () => {
      const dir = await fixture('seed-003-lvscare', { images: [LVSCARE_IMAGE] });
      assert.deepEqual(await lintBundle(dir), []);
    });

    it('without the rule, the static pod line is an error that suggests the rule', async () => {
      const dir = await fixture('seed-003-lvscare', { images: [LVSCARE_IMAGE], overlays: ['variants/seed-003-no-rewrite'] });
      const findings = await lintBundle(dir);
      assert.deepEqual(brief(findings), ['manifests/kube-lvscare.yaml:11:14 error image-missing']);
      assert.equal(findings[0]!.message, 'image sealerio/lvscare:v1.1.3-beta.8 is not in the bundle; the bundle has it as sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8');
      assert.equal(findings[0]!.hint, 'add a rewrite rule to ferry-bundle.yaml (rewrites: [{from: docker.io/sealerio/, to: sea.hub:5000/sealerio/}]) or reference sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8');
    });

    it('a script pulling lvscare from the online registry is an error at its line, whatever the rules say', async () => {
      const dir = await fixture('seed-003-lvscare', { images: [LVSCARE_IMAGE], overlays: ['variants/seed-003-online-pull'] });
      const findings = await lintBundle(dir);
      assert.deepEqual(brief(findings), [
        'scripts/pull-lvscare.sh:5:1 error network-command',
        'scripts/pull-lvscare.sh:5:13 error image-missing',
        'scripts/pull-lvscare.sh:5:13 warning image-tag',
      ]);
      assert.match(findings[0]!.message, /^`docker pull docker-cdv5ju\.swr-pro\.myhuaweicloud\.com\/global\/lvscare:latest` pulls from docker-cdv5ju\.swr-pro\.myhuaweicloud\.com: an air-gapped host cannot do this$/);
    });

    it('the image tar alone is not enough: no tar, no pass', async () => {
      const dir = await fixture('seed-003-lvscare', { images: [] });
      const findings = await lintBundle(dir, { config: { ...emptyBundleConfig(), rewrites: [{ from: 'docker.io/sealerio/', to: 'sea.hub:5000/sealerio/' }] } });
      assert.deepEqual(brief(findings), ['manifests/kube-lvscare.yaml:11:14 error image-missing']);
      assert.equal(findings[0]!.message, 'image sealerio/lvscare:v1.1.3-beta.8 is not in the bundle (looked up as sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8 after rewrite rules); '
        + 'also referenced at manifests/reg-lvscare.yaml:11');
    });
  });
});
