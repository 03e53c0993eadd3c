/**
 * The seed plans under examples/ (issue 11 item 7): they validate as `ferry plan validate`
 * does, their templated step args are valid once a host's params fill them, the templates
 * they install render, and the sealer bundle's static pod passes lint once its image is
 * published under the rewritten name. Running them against Ferry's registry is the e2e's job.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYamlText } from 'yaml';
import { lintBundle, publishedImagesFrom } from '../../../common/src/bundle/lint/index.js';
import { expandStep } from '../../../common/src/plan/expand-step.js';
import { planOrThrow } from '../../../common/src/plan/plan-load.js';
import { STEP_SCHEMAS } from '../../../common/src/plan/step-registry.js';
import type { Plan } from '../../../common/src/plan/types.js';
import { renderTemplate } from '../../../agent/src/steps/util/template.js';
import { repoRoot } from '../../support/proc.js';

const examples = join(repoRoot(), 'examples');
const load = (name: string): Plan => planOrThrow(readFileSync(join(examples, name, 'plan.yaml'), 'utf8'), `examples/${name}/plan.yaml`);

/** Every step expanded for one host and parsed again by its schema, as the agent does. */
function argsFor(plan: Plan, params: Record<string, unknown>, labels: Record<string, string>): Map<string, unknown> {
  const defaults = Object.fromEntries(plan.params.filter((p) => p.default !== undefined).map((p) => [p.name, p.default]));
  const ctx = { params: { ...defaults, ...params }, facts: {}, labels, bundleDir: (a: string) => `/var/lib/ferry-agent/bundles/${a}` };
  const out = new Map<string, unknown>();
  for (const step of plan.steps) {
    const parsed = STEP_SCHEMAS.get(step.type)!.parse(expandStep(step, ctx).args);
    assert.deepEqual(parsed.problems, [], `${step.id}`);
    out.set(step.id, parsed.args);
  }
  return out;
}

describe('seed example plans', () => {
  it('sealer-lvscare: pins sea.hub, mirrors sea.hub:5000 with the fleet certificate, installs the static pod', () => {
    const plan = load('sealer-lvscare');
    assert.deepEqual(plan.steps.map((s) => s.type), ['hosts.entry', 'containerd.mirror', 'exec', 'template.render', 'assert']);
    const args = argsFor(plan, { registry_address: '10.77.0.1', master0: '10.77.0.11' }, {});
    assert.deepEqual(args.get('pin-sea-hub'), { address: '10.77.0.1', names: ['sea.hub'], state: 'present', file: '/etc/hosts', backup: true });
    const mirror = args.get('containerd-mirror') as { mirrors: string[]; upstreams: string[]; ca: unknown; client: unknown };
    assert.deepEqual([mirror.mirrors, mirror.upstreams, mirror.ca, mirror.client],
      [['https://sea.hub:5000'], ['sea.hub:5000'], { kind: 'fleet' }, { kind: 'fleet' }]);
    const pod = renderTemplate(readFileSync(join(examples, 'sealer-lvscare/package/manifests/kube-lvscare.yaml'), 'utf8'),
      { params: { vip: '10.103.97.2', master0: '10.77.0.11' }, facts: {}, labels: {}, bundleDir: () => '' }, 'kube-lvscare.yaml');
    const doc = parseYamlText(pod) as { spec: { containers: Array<{ image: string; args: string[] }> } };
    assert.equal(doc.spec.containers[0]!.image, 'sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8');
    assert.deepEqual(doc.spec.containers[0]!.args.filter((a) => a.includes(':6443')), ['10.103.97.2:6443', '10.77.0.11:6443']);
  });

  it('sealer-lvscare: bundle lint accepts the static pod once lvscare is published as sea.hub:5000/sealerio/lvscare', async () => {
    const dir = join(examples, 'sealer-lvscare/package');
    const missing = await lintBundle(dir, { manifest: { images: [] } });
    assert.deepEqual(missing.map((f) => `${f.file}:${f.line} ${f.rule}`), ['manifests/kube-lvscare.yaml:17 image-missing']);
    const published = publishedImagesFrom([{ repository: 'sea.hub:5000/sealerio/lvscare', tag: 'v1.1.3-beta.8', digest: `sha256:${'1'.repeat(64)}` }]);
    assert.deepEqual(await lintBundle(dir, { manifest: { images: [] }, published }), []);
  });

  it('kubespray-offline: node steps for nodes, the variables file for the control host, rendered for the user', () => {
    const plan = load('kubespray-offline');
    assert.deepEqual(plan.steps.map((s) => `${s.type}:${JSON.stringify(s.when?.labels ?? {})}`), [
      'hosts.entry:{}', 'exec:{"kubespray":"node"}', 'containerd.mirror:{"kubespray":"node"}', 'template.render:{"kubespray":"control"}',
    ]);
    const args = argsFor(plan, { registry_address: '10.77.0.1' }, { kubespray: 'node' });
    const mirror = args.get('containerd-mirror') as { mirrors: string[]; upstreams: string[]; containerdConfig: string };
    assert.deepEqual([mirror.mirrors, mirror.upstreams, mirror.containerdConfig], [['https://hub.kubespray.local:5000'], ['hub.kubespray.local:5000'], 'skip']);

    const text = renderTemplate(readFileSync(join(examples, 'kubespray-offline/package/kubespray/ferry-offline.yml'), 'utf8'),
      { params: { registry_name: 'hub.kubespray.local', registry_port: 5000 }, facts: {}, labels: {}, bundleDir: () => '' }, 'ferry-offline.yml');
    const vars = parseYamlText(text) as Record<string, string>;
    assert.equal(vars['registry_host'], 'hub.kubespray.local:5000');
    assert.equal(vars['files_repo'], 'https://hub.kubespray.local:5000/files/kubespray-offline/2.25.0/k8s');
    assert.equal(vars['kube_image_repo'], '{{ registry_host }}/registry.k8s.io', 'Kubespray\'s own Jinja stays for Ansible');
    // Kubespray 2.25 writes config_path (and so reads the mirror's hosts.toml) only with this set.
    assert.equal((vars as Record<string, unknown>)['containerd_use_config_path'], true);
    for (const k of ['docker_image_repo', 'quay_image_repo', 'github_image_repo', 'dl_k8s_io_url', 'github_url', 'kubeadm_download_url', 'containerd_download_url']) {
      assert.ok(vars[k], k);
    }
  });
});
