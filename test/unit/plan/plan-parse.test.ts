import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { parsePlan } from '../../../common/src/plan/parse.js';
import { planOrThrow } from '../../../common/src/plan/plan-load.js';
import type { Plan } from '../../../common/src/plan/types.js';
import { TEST_SCHEMAS } from './test-schemas.js';

/** The example from parse.ts's documentation, kept in step with it. */
const EXAMPLE = `name: kubeedge-edge
description: KubeEdge edge node with EdgeMesh and kubectl logs/exec (offline)

params:
  kubeedge_version: 1.22.0
  cloudcore_ip: ~
  stream_port: 10003
  extra_images:
    type: list
    default: []
    description: more image tars to import from the bundle

bundles:
  edge: kubeedge-edge:1.22.0

steps:
  - id: import-images
    type: image.import
    args:
      bundle: edge
      images: [images/docker.io-kubeedge-edgemesh-agent-v1.17.0.tar]
    timeout: 10m
    retries: 2
    retryDelay: 10s

  - id: keadm-join
    type: exec
    args:
      argv: ["{{ bundles.edge }}/bin/keadm", join, "--cloudcore-ipport={{ params.cloudcore_ip }}:10000",
             "--kubeedge-version=v{{ params.kubeedge_version }}", "--edgenode-name={{ facts.hostname }}"]
    # guards, run on the host first. creates: PATH skips (unchanged) when PATH exists;
    # unless: CMD skips (unchanged) when CMD exits 0; a string runs with /bin/sh -c, a list is argv
    unless: test -s /etc/kubeedge/config/edgecore.yaml && systemctl is-enabled --quiet edgecore
    when:
      labels: { role: edge }
      facts: { os.id: ubuntu }

  - id: enable-edge-stream
    type: yaml.edit
    args:
      file: /etc/kubeedge/config/edgecore.yaml
      set:
        - { path: modules.edgeStream.enable, value: true }
        - { path: modules.edgeStream.server, value: "{{ params.cloudcore_ip }}:{{ params.stream_port }}" }

  - id: restart-edgecore
    type: systemd.unit
    args: { name: edgecore.service, state: restarted }
    onlyIf: [test, -f, /etc/kubeedge/config/edgecore.yaml]
`;

const opts = { schemas: TEST_SCHEMAS };

/** Writes a Plan back as YAML in the long forms (list bundles, full params, argv guards). */
function toYaml(plan: Plan): string {
  return stringify({
    name: plan.name,
    description: plan.description,
    params: Object.fromEntries(plan.params.map((p) => [p.name, {
      type: p.type, ...(p.default !== undefined && { default: p.default }), ...(p.default === undefined && { required: p.required }),
      ...(p.description !== undefined && { description: p.description }),
    }])),
    bundles: plan.bundles,
    steps: plan.steps.map((s) => ({
      id: s.id, type: s.type, args: s.args, ...(s.when && { when: s.when }),
      timeout: `${s.timeoutMs}ms`, retries: s.retries, retryDelay: `${s.retryDelayMs}ms`, ...s.guards,
    })),
  });
}

const withoutPos = (p: Plan) => ({ ...p, steps: p.steps.map(({ pos: _pos, ...s }) => s) });

describe('plan parsing: a valid plan', () => {
  it('reads the documented example into the plan model', () => {
    const { plan, problems } = parsePlan(EXAMPLE, 'edge.yaml', opts);
    assert.deepEqual(problems, []);
    assert.ok(plan);
    assert.equal(plan.name, 'kubeedge-edge');
    assert.deepEqual(plan.params, [
      { name: 'kubeedge_version', type: 'string', required: false, default: '1.22.0' },
      { name: 'cloudcore_ip', type: 'string', required: true },
      { name: 'stream_port', type: 'int', required: false, default: 10003 },
      { name: 'extra_images', type: 'list', required: false, default: [], description: 'more image tars to import from the bundle' },
    ]);
    assert.deepEqual(plan.bundles, [{ as: 'edge', name: 'kubeedge-edge', version: '1.22.0' }]);
    assert.deepEqual(plan.steps.map((s) => [s.id, s.type, s.timeoutMs, s.retries, s.retryDelayMs, s.pos.line, s.pos.col]), [
      ['import-images', 'image.import', 600_000, 2, 10_000, 17, 5],
      ['keadm-join', 'exec', 300_000, 0, 5_000, 26, 5],
      ['enable-edge-stream', 'yaml.edit', 300_000, 0, 5_000, 38, 5],
      ['restart-edgecore', 'systemd.unit', 300_000, 0, 5_000, 46, 5],
    ]);
    assert.equal(plan.steps[0]!.pos.file, 'edge.yaml');
    // Args are kept as written (templates unexpanded): they are expanded per host.
    assert.deepEqual(plan.steps[2]!.args, {
      file: '/etc/kubeedge/config/edgecore.yaml',
      set: [
        { path: 'modules.edgeStream.enable', value: true },
        { path: 'modules.edgeStream.server', value: '{{ params.cloudcore_ip }}:{{ params.stream_port }}' },
      ],
    });
    assert.deepEqual(plan.steps[1]!.when, { labels: { role: 'edge' }, facts: { 'os.id': 'ubuntu' } });
    assert.equal(plan.steps[0]!.when, undefined);
    assert.deepEqual(plan.steps[1]!.guards, { unless: ['/bin/sh', '-c', 'test -s /etc/kubeedge/config/edgecore.yaml && systemctl is-enabled --quiet edgecore'] });
    assert.deepEqual(plan.steps[3]!.guards, { onlyIf: ['test', '-f', '/etc/kubeedge/config/edgecore.yaml'] });
  });

  it('round-trips: the plan written back in the long forms parses to the same plan', () => {
    const first = planOrThrow(EXAMPLE, 'edge.yaml', opts);
    const again = planOrThrow(toYaml(first), 'again.yaml', opts);
    assert.deepEqual(withoutPos(again), withoutPos(first));
  });

  it('accepts the list form of bundles, anchors and aliases, and argv guards', () => {
    const plan = planOrThrow(`
name: k3s-cloud
bundles:
  - { as: k3s, name: k3s-airgap, version: v1.29.0+k3s1 }
  - { name: kubeedge, version: "1.22" }
steps:
  - id: images
    type: image.import
    args: { bundle: kubeedge, images: ["{{ bundles.k3s }}/images/k3s.tar"] }
    when: &cloud { labels: { role: cloud } }
    creates: /var/lib/ferry/k3s-images-done
    onlyIf: [test, -d, /var/lib/rancher]
  - id: restart
    type: systemd.unit
    args: { name: k3s.service, state: restarted, waitActive: 60 }
    when: *cloud
`, 'k3s.yaml', opts);
    assert.deepEqual(plan.bundles, [
      { as: 'k3s', name: 'k3s-airgap', version: 'v1.29.0+k3s1' },
      { as: 'kubeedge', name: 'kubeedge', version: '1.22' },
    ]);
    assert.deepEqual(plan.steps[1]!.when, { labels: { role: 'cloud' } });
    assert.deepEqual(plan.steps[0]!.guards, { creates: '/var/lib/ferry/k3s-images-done', onlyIf: ['test', '-d', '/var/lib/rancher'] });
    assert.equal(plan.description, '');
  });

  it('keeps numbers that would change when read as the text written (versions, file modes)', () => {
    const plan = planOrThrow(`
name: modes
params:
  version: 1.10
  count: 3
steps:
  - id: unit
    type: yaml.edit
    args: { file: /etc/x.yaml, set: [{ path: mode, value: 0755 }, { path: v, value: 1.10 }, { path: n, value: 7 }] }
`, 'modes.yaml', opts);
    assert.deepEqual(plan.params.map((p) => [p.name, p.type, p.default]), [['version', 'string', '1.10'], ['count', 'int', 3]]);
    assert.deepEqual(plan.steps[0]!.args.set, [{ path: 'mode', value: '0755' }, { path: 'v', value: '1.10' }, { path: 'n', value: 7 }]);
  });

  it('leaves schema checks of templated args to the host, other tools\' {{ }} and nested bundle: content alone', () => {
    const plan = planOrThrow(`
name: deferred
params:
  wait: { type: int, default: 30 }
  images: { type: list, required: true }
steps:
  - id: unit
    type: systemd.unit
    args: { name: edgecore.service, waitActive: "{{ params.wait }}" }
  - id: images
    type: image.import
    args: { images: "{{ params.images }}" }
  - id: inspect
    type: exec
    args: { argv: [docker, inspect, -f, "{{.Id}}", "{{ .Values.image }}", 'x{{ "{{" }}y'] }
  - id: content
    type: yaml.edit
    args: { file: /etc/x.yaml, set: [{ path: a, value: { bundle: not-an-alias } }] }
`, 'deferred.yaml', opts);
    assert.equal(plan.steps.length, 4);
  });

  it('still reports a misspelt arg whose value is a template', () => {
    const { problems } = parsePlan('name: x\nparams: { w: 5 }\nsteps:\n  - id: a\n    type: systemd.unit\n    args: { name: x.service, waitActve: "{{ params.w }}" }\n', 'x.yaml', opts);
    assert.deepEqual(problems, [{ file: 'x.yaml', line: 6, col: 30, message: 'args.waitActve: unknown argument "waitActve"' }]);
  });

  it('uses the registered step types by default', () => {
    // Whatever is registered, a made-up type is refused and the message lists the known ones.
    const { plan, problems } = parsePlan('name: x\nsteps:\n  - { id: a, type: no.such.type }\n', 'x.yaml');
    assert.equal(plan, undefined);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!.message, /^unknown step type "no.such.type".*known types: /);
  });
});

describe('planOrThrow', () => {
  it('throws InvalidArgument listing every problem as file:line:col lines, sorted', () => {
    const text = 'name: x\nsteps:\n  - id: a\n    type: exec\n    args: { argv: [] }\n    retries: -1\n  - id: a\n    type: exec\n    args: { argv: [b] }\n';
    assert.throws(() => planOrThrow(text, 'p.yaml', opts), (e: FerryError) => {
      assert.ok(e instanceof FerryError);
      assert.equal(e.code, ErrorCode.InvalidArgument);
      assert.equal(e.message, [
        'plan p.yaml is invalid (3 problems):',
        'p.yaml:5:19: args.argv: "argv" must not be empty',
        'p.yaml:6:14: retries must be a whole number, 0 or more',
        'p.yaml:7:9: duplicate step id "a" (first used at line 3)',
      ].join('\n'));
      return true;
    });
  });
});
