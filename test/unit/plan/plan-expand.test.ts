import assert from 'node:assert/strict';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { resolveParams } from '../../../common/src/plan/expand-params.js';
import { expandStep } from '../../../common/src/plan/expand-step.js';
import { expandString, expandValue, scanTemplate, type ExpandContext } from '../../../common/src/plan/expand-template.js';
import { planOrThrow } from '../../../common/src/plan/plan-load.js';
import { TEST_SCHEMAS } from './test-schemas.js';

const ctx: ExpandContext = {
  params: { version: '1.22.0', port: 10003, images: ['a.tar', 'b.tar'], debug: false, extra: { k: 'v' } },
  facts: { hostname: 'edge-01', os: { id: 'ubuntu' }, cpus: 4 },
  labels: { site: 'plant-7', 'topology.kubernetes.io/zone': 'z1' },
  bundleDir: (alias) => (alias === 'kubeedge' ? '/var/lib/ferry/bundles/kubeedge-1.22.0' : undefined),
};

describe('plan templates: expansion', () => {
  it('fills params, nested facts, labels and bundle directories into text', () => {
    const r = expandString('{{ bundles.kubeedge }}/bin/keadm --version=v{{params.version}} --host={{ facts.hostname }}.{{ facts.os.id }} --site={{ labels.site }}:{{ params.port }}', ctx);
    assert.deepEqual(r, { value: '/var/lib/ferry/bundles/kubeedge-1.22.0/bin/keadm --version=v1.22.0 --host=edge-01.ubuntu --site=plant-7:10003', errors: [] });
    assert.deepEqual(expandString('zone={{ labels.topology.kubernetes.io/zone }}', ctx).value, 'zone=z1');
    assert.equal(expandString('{{ facts.ips[1] }}/{{ facts.ips.0 }}', { ...ctx, facts: { ips: ['10.0.0.1', '10.0.0.2'] } }).value, '10.0.0.2/10.0.0.1');
  });

  it('keeps the value\'s type when a string is exactly one expression', () => {
    assert.deepEqual(expandString('{{ params.images }}', ctx).value, ['a.tar', 'b.tar']);
    assert.equal(expandString(' {{ params.port }} ', ctx).value, ' 10003 ');
    assert.equal(expandString('{{ params.port }}', ctx).value, 10003);
    assert.equal(expandString('{{ params.debug }}', ctx).value, false);
    assert.equal(expandString('{{ facts.cpus }}', ctx).value, 4);
  });

  it('uses | default("…") only when the name has no value', () => {
    assert.equal(expandString('{{ facts.arch | default("amd64") }}', ctx).value, 'amd64');
    assert.equal(expandString("{{ labels.site|default('x') }}", ctx).value, 'plant-7');
    assert.equal(expandString('{{ bundles.nope | default("") }}/x', ctx).value, '/x');
  });

  it('leaves other tools\' {{ }} alone and supports quoted literals', () => {
    assert.equal(expandString('docker inspect -f {{.Id}} {{ .Values.image }} {{ end }}', ctx).value, 'docker inspect -f {{.Id}} {{ .Values.image }} {{ end }}');
    assert.equal(expandString('{{ "{{" }} .Id }}', ctx).value, '{{ .Id }}');
    assert.equal(scanTemplate('{{.Id}}').templated, false);
    assert.equal(scanTemplate('{{ "x" }}').templated, true);
  });

  it('reports every unknown name and bad expression, without running anything', () => {
    const r = expandString('{{ params.nope }} {{ facts.os.arch }} {{ labels.rack }} {{ bundles.k3s }} {{ params.images }}', ctx);
    assert.deepEqual(r.errors, [
      '{{ params.nope }}: unknown param "nope" (not declared, or no value and no default)',
      '{{ facts.os.arch }}: host has no fact "os.arch"',
      '{{ labels.rack }}: host has no label "rack"',
      '{{ bundles.k3s }}: bundle "k3s" is not available on this host',
      '{{ params.images }}: is a list; it can only fill a whole value, not part of a string',
    ]);
    assert.deepEqual(scanTemplate('{{ params }} {{ process.exit(1) }} {{ params.a | lower }} {{ facts..x }}').errors, [
      '{{ params }}: expected params.<name>',
      '{{ process.exit(1) }}: unknown template root "process"; use params, facts, labels or bundles',
      '{{ params.a | lower }}: unknown filter "lower"; the only filter is default("text")',
      '{{ facts..x }}: expected facts.<name>, ".x" is not a valid name',
    ]);
  });

  it('expands deep inside maps and lists, naming the path of each problem', () => {
    const r = expandValue({ set: [{ path: 'a', value: '{{ params.extra }}' }, { path: 'b', value: '{{ labels.rack }}' }], n: 3, ok: true }, ctx);
    assert.deepEqual(r.errors, ['set[1].value: {{ labels.rack }}: host has no label "rack"']);
    const ok = expandValue({ set: [{ path: 'a', value: '{{ params.extra }}' }], n: 3, nothing: null }, ctx);
    assert.deepEqual(ok, { value: { set: [{ path: 'a', value: { k: 'v' } }], n: 3, nothing: null }, errors: [] });
  });
});

describe('plan templates: expandStep', () => {
  const plan = planOrThrow(`name: e
params:
  version: 1.22.0
  cloudcore_ip: ~
  images: { type: list, default: [cloudcore.tar] }
bundles:
  kubeedge: kubeedge:1.22.0
steps:
  - id: images
    type: image.import
    args: { bundle: kubeedge, images: "{{ params.images }}" }
    creates: "{{ bundles.kubeedge }}/.imported"
  - id: keadm
    type: exec
    args: { argv: ["{{ bundles.kubeedge }}/bin/keadm", join, "--cloudcore-ipport={{ params.cloudcore_ip }}:10000", "--edgenode-name={{ facts.hostname }}"] }
    unless: test -f /etc/kubeedge/config/edgecore.yaml && grep -q {{ facts.hostname }} /etc/kubeedge/config/edgecore.yaml
    onlyIf: [test, -n, "{{ labels.site | default('') }}"]
`, 'e.yaml', { schemas: TEST_SCHEMAS });
  const params = resolveParams(plan, { cloudcore_ip: '10.0.0.5' });
  const host = { ...ctx, params };

  it('expands args and guards with the rollout\'s params and this host\'s facts, labels and bundles', () => {
    const images = expandStep(plan.steps[0]!, host);
    assert.deepEqual(images.args, { bundle: 'kubeedge', images: ['cloudcore.tar'] });
    assert.deepEqual(images.guards, { creates: '/var/lib/ferry/bundles/kubeedge-1.22.0/.imported' });
    // The expanded args pass the step's schema, as the agent checks them again.
    assert.deepEqual(TEST_SCHEMAS.get('image.import')!.parse(images.args).problems, []);
    const keadm = expandStep(plan.steps[1]!, host);
    assert.deepEqual(keadm.args.argv, ['/var/lib/ferry/bundles/kubeedge-1.22.0/bin/keadm', 'join', '--cloudcore-ipport=10.0.0.5:10000', '--edgenode-name=edge-01']);
    assert.deepEqual(keadm.guards.unless, ['/bin/sh', '-c', 'test -f /etc/kubeedge/config/edgecore.yaml && grep -q edge-01 /etc/kubeedge/config/edgecore.yaml']);
    assert.deepEqual(keadm.guards.onlyIf, ['test', '-n', 'plant-7']);
    assert.equal(plan.steps[0]!.args.images, '{{ params.images }}', 'the plan itself is not changed');
  });

  it('throws one InvalidArgument naming the step, its position and every unknown name', () => {
    const bare: ExpandContext = { params, facts: {}, labels: {}, bundleDir: () => undefined };
    assert.throws(() => expandStep(plan.steps[1]!, bare), (e: FerryError) => {
      assert.equal(e.code, ErrorCode.InvalidArgument);
      assert.equal(e.message, [
        'step "keadm" (e.yaml:13:5) cannot be expanded:',
        '  args.argv[0]: {{ bundles.kubeedge }}: bundle "kubeedge" is not available on this host',
        '  args.argv[3]: {{ facts.hostname }}: host has no fact "hostname"',
        '  unless[2]: {{ facts.hostname }}: host has no fact "hostname"',
      ].join('\n'));
      return true;
    });
    assert.throws(() => expandStep({ ...plan.steps[0]!, guards: { creates: '{{ params.images }}' } }, host), /creates: must expand to text, not a list/);
  });
});
