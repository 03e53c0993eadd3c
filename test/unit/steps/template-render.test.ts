import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
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
  params: { cloudcoreIP: '192.168.10.5', streamPort: 10003, registry: 'sea.hub:5000' },
  facts: { hostname: 'edge-node-1', os: { id: 'ubuntu', release: '22.04' }, ips: ['192.168.10.21'] },
  labels: { site: 'plant-7', 'topology.kubernetes.io/zone': 'hall-b' },
};

describe('template.render', () => {
  let t: TestContext;
  let bundle: string;
  /** Writes a template into the staged "cloud" bundle. */
  const template = (rel: string, text: string) => {
    mkdirSync(join(bundle, rel, '..'), { recursive: true });
    writeFileSync(join(bundle, rel), text);
  };
  beforeEach(() => {
    t = makeContext({ ...vars, bundles: {} });
    bundle = `${t.root}-bundle`;
    t.ctx.bundleDir = (as) => { if (as !== 'cloud') throw new Error(`bundle "${as}" is not staged`); return bundle; };
  });
  afterEach(() => { t.cleanup(); rmSync(bundle, { recursive: true, force: true }); });

  it('uses the plan template language: params, nested/indexed facts, labels, bundles, default; Helm braces stay', () => {
    const out = renderTemplate(
      'server: {{ params.cloudcoreIP }}:{{params.streamPort}}\nnode: {{ facts.hostname }} ({{ facts.os.id }} {{ facts.os.release }})\n'
      + 'ip: {{ facts.ips[0] }}\nzone: {{ labels.topology.kubernetes.io/zone }}\nimages: {{ bundles.cloud }}/images\n'
      + 'arch: {{ facts.arch | default("amd64") }}\nhelm: {{ .Values.image }} {{- if x }}\nlit: {{ "{{" }}\n',
      t.ctx, 'cloud:t');
    assert.equal(out, `server: 192.168.10.5:10003\nnode: edge-node-1 (ubuntu 22.04)\nip: 192.168.10.21\nzone: hall-b\nimages: ${bundle}/images\n`
      + 'arch: amd64\nhelm: {{ .Values.image }} {{- if x }}\nlit: {{\n');
  });

  it('renders a bundle template to dest; unchanged on the second run; changed with a diff when a param changes', async () => {
    template('templates/metrics-server.yaml', 'image: {{ params.registry }}/metrics-server:v0.4.1\nnode: {{ facts.hostname }}\n');
    const a = args({ bundle: 'cloud', src: 'templates/metrics-server.yaml', dest: '/opt/manifests/ms.yaml', mode: '0640' });
    const out = await templateRenderExecutor.run(a, t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.equal(t.read('/opt/manifests/ms.yaml'), 'image: sea.hub:5000/metrics-server:v0.4.1\nnode: edge-node-1\n');
    assert.equal((await templateRenderExecutor.run(a, t.ctx)).status, 'unchanged');
    const moved = await templateRenderExecutor.run(a, withCtx(t, { params: { registry: '10.0.0.9:5000' } }));
    assert.equal(moved.status, 'changed');
    assert.match(moved.diff!, /^-image: sea\.hub:5000\/metrics-server:v0\.4\.1\n\+image: 10\.0\.0\.9:5000\/metrics-server:v0\.4\.1$/m);
  });

  it('writes an inline template as given (the job runner already expanded it)', async () => {
    const out = await templateRenderExecutor.run(args({ template: 'node: edge-node-1\nkeep: {{ .Values.x }}\n', dest: '/etc/n.conf' }), t.ctx);
    assert.equal(out.status, 'changed');
    assert.equal(t.read('/etc/n.conf'), 'node: edge-node-1\nkeep: {{ .Values.x }}\n');
  });

  it('fails on a missing value or an unknown root with line:col, writing nothing', async () => {
    template('t/a.conf', 'a: 1\nb: {{ params.token }}\n');
    const missing = await templateRenderExecutor.run(args({ bundle: 'cloud', src: 't/a.conf', dest: '/x.conf' }), t.ctx);
    assert.equal(missing.errorCode, 'STEP_TEMPLATE_INVALID');
    assert.match(missing.message, /^cloud:t\/a\.conf:2:4: \{\{ params\.token \}\}: unknown param "token".*\. Next: declare the param/);
    template('t/b.conf', '{{ param.x }}');
    const unknown = await templateRenderExecutor.run(args({ bundle: 'cloud', src: 't/b.conf', dest: '/x.conf' }), t.ctx);
    assert.match(unknown.message, /^cloud:t\/b\.conf:1:1: \{\{ param\.x \}\}: unknown template root "param"/);
    assert.equal(existsSync(t.at('/x.conf')), false);
    const nofile = await templateRenderExecutor.run(args({ bundle: 'cloud', src: 't/none.conf', dest: '/x.conf' }), t.ctx);
    assert.match(nofile.message, /bundle "cloud" has no file t\/none\.conf/);
    assert.match(templateRenderSchema.parse({ template: 'x', src: 'a', bundle: 'b', dest: '/x' }).problems[0]!.message, /not both/);
  });

  it('check mode shows the rendered diff without writing', async () => {
    template('n.conf', 'node: {{ facts.hostname }}\n');
    const out = await templateRenderExecutor.run(args({ bundle: 'cloud', src: 'n.conf', dest: '/etc/n.conf' }), withCtx(t, { check: true }));
    assert.equal(out.status, 'changed');
    assert.match(out.diff!, /^\+node: edge-node-1$/m);
    assert.equal(existsSync(t.at('/etc/n.conf')), false);
  });
});
