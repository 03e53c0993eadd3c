import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { templateRenderSchema, type TemplateRenderArgs } from '../../../common/src/plan/steps/template-render.js';
import { templateRenderExecutor } from '../../../agent/src/steps/template-render.js';
import { renderTemplate } from '../../../agent/src/steps/util/template.js';
import { makeContext, withCtx, type TestContext } from './step-context.js';

function args(raw: Record<string, unknown>): TemplateRenderArgs {
  const r = templateRenderSchema.parse(raw);
  assert.deepEqual(r.problems, []);
  return r.args!;
}

const vars = {
  params: { cloudcoreIP: '192.168.10.5', streamPort: 10003, dns: ['10.96.0.10'] },
  facts: { hostname: 'edge-node-1', os: { id: 'ubuntu', release: '22.04' }, ips: ['192.168.10.21'] },
  labels: { site: 'plant-7' },
};

describe('template.render', () => {
  let t: TestContext;
  beforeEach(() => { t = makeContext(vars); });
  afterEach(() => t.cleanup());

  it('fills params, facts and labels (nested, indexed), and leaves Helm-style braces alone', () => {
    const out = renderTemplate(
      'server: {{ params.cloudcoreIP }}:{{params.streamPort}}\nnode: {{ facts.hostname }} ({{ facts.os.id }} {{ facts.os.release }})\n'
      + 'ip: {{ facts.ips[0] }}\nsite: {{ labels.site }}\ndns: {{ params.dns }}\nhelm: {{ .Values.image }} {{- if x }}\n',
      vars, 'inline template');
    assert.equal(out, 'server: 192.168.10.5:10003\nnode: edge-node-1 (ubuntu 22.04)\nip: 192.168.10.21\nsite: plant-7\ndns: ["10.96.0.10"]\nhelm: {{ .Values.image }} {{- if x }}\n');
  });

  it('renders to dest, unchanged on the second run, changed with a diff when a param changes', async () => {
    const a = args({ template: 'server: {{ params.cloudcoreIP }}:10004\nnode: {{ facts.hostname }}\n', dest: '/etc/kubeedge/stream.conf', mode: '0640' });
    assert.equal((await templateRenderExecutor.run(a, t.ctx)).status, 'changed');
    assert.equal(t.read('/etc/kubeedge/stream.conf'), 'server: 192.168.10.5:10004\nnode: edge-node-1\n');
    assert.equal((await templateRenderExecutor.run(a, t.ctx)).status, 'unchanged');
    const moved = await templateRenderExecutor.run(a, withCtx(t, { params: { cloudcoreIP: '192.168.10.6' } }));
    assert.equal(moved.status, 'changed');
    assert.match(moved.diff!, /^-server: 192\.168\.10\.5:10004\n\+server: 192\.168\.10\.6:10004$/m);
  });

  it('renders a template file from a bundle', async () => {
    const bundle = `${t.root}-bundle`;
    mkdirSync(join(bundle, 'templates'), { recursive: true });
    writeFileSync(join(bundle, 'templates/metrics-server.yaml'), 'image: {{ params.registry }}/metrics-server:v0.4.1\n');
    const ctx = withCtx(t, { params: { registry: 'sea.hub:5000' }, bundleDir: () => bundle });
    const out = await templateRenderExecutor.run(args({ bundle: 'cloud', src: 'templates/metrics-server.yaml', dest: '/opt/manifests/ms.yaml' }), ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.equal(t.read('/opt/manifests/ms.yaml'), 'image: sea.hub:5000/metrics-server:v0.4.1\n');
  });

  it('fails on a missing value or an unknown name with line:col, writing nothing', async () => {
    const missing = await templateRenderExecutor.run(args({ template: 'a: 1\nb: {{ params.token }}\n', dest: '/x.conf' }), t.ctx);
    assert.equal(missing.errorCode, 'STEP_TEMPLATE_INVALID');
    assert.match(missing.message, /^inline template:2:4: \{\{ params\.token \}\} has no value on this host; set the parameter/);
    const unknown = await templateRenderExecutor.run(args({ template: '{{ param.x }}', dest: '/x.conf' }), t.ctx);
    assert.match(unknown.message, /inline template:1:1: unknown name "param" in \{\{ param\.x \}\}; start lookups with params\., facts\., labels\./);
    assert.equal(existsSync(t.at('/x.conf')), false);
    assert.match(templateRenderSchema.parse({ template: 'x', src: 'a', bundle: 'b', dest: '/x' }).problems[0]!.message, /not both/);
  });

  it('check mode shows the rendered diff without writing', async () => {
    const out = await templateRenderExecutor.run(args({ template: 'node: {{ facts.hostname }}\n', dest: '/etc/n.conf' }), withCtx(t, { check: true }));
    assert.equal(out.status, 'changed');
    assert.match(out.diff!, /^\+node: edge-node-1$/m);
    assert.equal(existsSync(t.at('/etc/n.conf')), false);
  });
});
