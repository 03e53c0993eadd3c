/**
 * Argument schemas of systemd.unit, iptables.rule, image.import, kubectl.apply and
 * kubectl.patch: defaults, every problem reported with its path, unknown keys refused.
 */
import assert from 'node:assert/strict';
import type { StepSchema } from '../../../common/src/plan/step-schema.js';
import { imageImportSchema } from '../../../common/src/plan/steps/image-import.js';
import { iptablesRuleSchema } from '../../../common/src/plan/steps/iptables-rule.js';
import { kubectlApplySchema } from '../../../common/src/plan/steps/kubectl-apply.js';
import { kubectlPatchSchema } from '../../../common/src/plan/steps/kubectl-patch.js';
import { systemdUnitSchema } from '../../../common/src/plan/steps/systemd-unit.js';

function problems(s: StepSchema<unknown>, raw: Record<string, unknown>): string[] {
  return s.parse(raw).problems.map((p) => `${p.path}: ${p.message}`);
}

describe('step schemas: systemd.unit', () => {
  it('fills defaults', () => {
    const { args, problems: p } = systemdUnitSchema.parse({ name: 'edgecore.service', content: '[Service]\nExecStart=/bin/true\n', state: 'restarted' });
    assert.deepEqual(p, []);
    assert.deepEqual(args, {
      name: 'edgecore.service', content: '[Service]\nExecStart=/bin/true\n', bundle: undefined, src: undefined, dropIns: [],
      enabled: undefined, state: 'restarted', always: false, waitActiveMs: 30_000, stableForMs: 1000, healthCheck: undefined,
      healthTimeoutMs: 30_000, unitDir: '/etc/systemd/system',
    });
  });

  it('reads bundle sources, drop-ins (.conf added) and durations', () => {
    const { args } = systemdUnitSchema.parse({
      name: 'cloudcore.service', bundle: 'kubeedge', src: './systemd/cloudcore.service', dropIns: [{ name: '10-env', content: 'x' }],
      waitActive: '2m', stableFor: '500ms', healthTimeout: '5s', enabled: true,
    });
    assert.equal(args!.src, 'systemd/cloudcore.service');
    assert.deepEqual(args!.dropIns, [{ name: '10-env.conf', content: 'x' }]);
    assert.equal(args!.waitActiveMs, 120_000);
    assert.equal(args!.stableForMs, 500);
    assert.equal(args!.healthTimeoutMs, 5000);
  });

  it('reports every problem with its path', () => {
    assert.deepEqual(problems(systemdUnitSchema, {
      name: 'edgecore', content: 'x', bundle: 'b', dropIns: [{ name: 'a/b' }, { name: 'x', content: '' }, { name: 'x.conf', content: 'y' }],
      state: 'running', always: true, waitActive: 'soon', unitDir: 'etc/systemd', healtCheck: ['x'],
    }), [
      'name: "name" must be a unit name with its type, like edgecore.service (got "edgecore")',
      'content: give either "content" or "bundle" + "src", not both',
      'src: "bundle" and "src" go together: the bundle alias and the unit file\'s path inside it',
      'dropIns[0].content: missing required string "content"',
      'dropIns[0].name: drop-in "name" must be a file name like 10-limits.conf (got "a/b")',
      'dropIns[2].name: drop-in "x.conf" is listed twice',
      'state: "state" must be one of started, restarted, stopped, reloaded (got "running")',
      'always: "always" only applies to state restarted or reloaded',
      'waitActive: "waitActive" must be a duration like 500ms, 30s, 5m or 1h30m (got "soon")',
      'unitDir: "unitDir" must be an absolute path (got "etc/systemd")',
      'healtCheck: unknown argument "healtCheck"',
    ]);
    assert.deepEqual(problems(systemdUnitSchema, { name: 'x.service', bundle: 'b', src: '../etc/passwd' }), ['src: "src" must be one file path inside the bundle (got "../etc/passwd")']);
  });
});

describe('step schemas: iptables.rule', () => {
  const rule = ['-p', 'tcp', '--dport', 10350, '-j', 'DNAT', '--to-destination', '10.0.0.5:10003'];
  it('fills defaults and keeps the rule as strings', () => {
    const { args } = iptablesRuleSchema.parse({ table: 'nat', chain: 'OUTPUT', rule });
    assert.deepEqual(args, {
      table: 'nat', chain: 'OUTPUT', rule: rule.map(String), state: 'present', position: 'append', insertAt: 1,
      comment: undefined, persist: false, persistFile: '/etc/iptables/rules.v4', family: 'ipv4',
    });
    assert.equal(iptablesRuleSchema.parse({ chain: 'INPUT', rule, family: 'ipv6' }).args!.persistFile, '/etc/iptables/rules.v6');
  });

  it('refuses table/chain/command options inside the rule and bad comments', () => {
    assert.deepEqual(problems(iptablesRuleSchema, { table: 'nats', chain: 'OUT PUT', rule: ['-t', 'nat', '-A', 'OUTPUT'], comment: 'say "hi"', insertAt: 2 }), [
      'table: "table" must be one of filter, nat, mangle, raw, security (got "nats")',
      'chain: "chain" must be a chain name like OUTPUT or PREROUTING (got "OUT PUT")',
      'rule[0]: "-t" does not belong in "rule": use the table, chain, state and position args',
      'rule[2]: "-A" does not belong in "rule": use the table, chain, state and position args',
      'comment: "comment" must be 1–256 characters on one line without double quotes',
      'insertAt: "insertAt" needs position: insert',
    ]);
    assert.deepEqual(problems(iptablesRuleSchema, { chain: 'INPUT' }), ['rule: missing required list "rule"']);
  });
});

describe('step schemas: image.import', () => {
  it('fills defaults', () => {
    const { args } = imageImportSchema.parse({ bundle: 'kubeedge', images: ['images/*.tar'] });
    assert.deepEqual(args, {
      bundle: 'kubeedge', images: ['images/*.tar'], files: undefined, namespace: 'k8s.io', address: undefined, k3s: false, rewrite: [], verify: true,
    });
  });

  it('reports missing sources, escaping paths and bad rewrites', () => {
    assert.deepEqual(problems(imageImportSchema, {}), ['give "bundle" + "images" (tars in a bundle) or "files" (tars on the host)'].map((m) => `: ${m}`));
    assert.deepEqual(problems(imageImportSchema, {
      images: ['../x.tar', '/abs.tar'], files: ['rel.tar'], namespace: 'k8s io',
      rewrite: [{ from: 'docker.io/kubeedge/', to: 'sea.hub:5000/kubeedge' }, { from: 'a@sha256:00', to: 'b' }, { to: 'x' }],
    }), [
      'images[0]: must be a path inside the bundle like images/*.tar (got "../x.tar")',
      'images[1]: must be a path inside the bundle like images/*.tar (got "/abs.tar")',
      'files[0]: must be an absolute path on the host (got "rel.tar"); use bundle + images for bundle files',
      'bundle: "images" are paths inside a bundle: give "bundle" (the plan\'s alias for it)',
      'namespace: "namespace" must be a containerd namespace like k8s.io (got "k8s io")',
      'rewrite[0].to: "from" and "to" must both end with "/" (a prefix) or both name a repository',
      'rewrite[1].from: rewrite rules name repositories, not digests',
      'rewrite[2].from: missing required string "from"',
    ]);
  });
});

describe('step schemas: kubectl.apply and kubectl.patch', () => {
  it('reads apply args with waits', () => {
    const { args, problems: p } = kubectlApplySchema.parse({
      kubeconfig: '/etc/rancher/k3s/k3s.yaml', bundle: 'edgemesh', files: ['crds/istio/*.yaml'], serverSide: true,
      waitFor: [{ resource: 'crd/gateways.networking.istio.io', condition: 'Established', timeout: '90s' }],
    });
    assert.deepEqual(p, []);
    assert.deepEqual(args, {
      kubeconfig: '/etc/rancher/k3s/k3s.yaml', context: undefined, namespace: undefined, k3s: false, bundle: 'edgemesh',
      files: ['crds/istio/*.yaml'], manifest: undefined, serverSide: true, forceConflicts: false, fieldManager: 'ferry',
      waitFor: [{ resource: 'crd/gateways.networking.istio.io', condition: 'Established', timeoutMs: 90_000 }],
    });
  });

  it('reports apply problems', () => {
    assert.deepEqual(problems(kubectlApplySchema, { namespace: 'Kube_Edge', forceConflicts: true, waitFor: [{ resource: 'metrics-server', condition: 'Available' }] }), [
      'namespace: "namespace" must be a Kubernetes namespace name (got "Kube_Edge")',
      ': give "bundle" + "files" (manifests in a bundle) or "manifest" (inline YAML)',
      'forceConflicts: "forceConflicts" only applies with serverSide: true',
      'waitFor[0].resource: "resource" must be kind/name like deployment/metrics-server or configmap/cloudcore (got "metrics-server")',
    ]);
  });

  it('reads patches given as YAML values or JSON text, and checks their shape per type', () => {
    const a = kubectlPatchSchema.parse({ namespace: 'kubeedge', resource: 'configmap/cloudcore', type: 'merge', patch: { data: { x: 'y' } } });
    assert.equal(a.args!.patch, '{"data":{"x":"y"}}');
    const b = kubectlPatchSchema.parse({ resource: 'deployment/x', type: 'json', patch: '[{"op":"remove","path":"/metadata/labels/a"}]' });
    assert.equal(b.args!.type, 'json');
    assert.equal(b.args!.patch, '[{"op":"remove","path":"/metadata/labels/a"}]');
    assert.deepEqual(problems(kubectlPatchSchema, { resource: 'deployment/x', type: 'json', patch: { a: 1 } }),
      ['patch: a json patch is a list of operations like [{op: replace, path: /data/x, value: y}]']);
    assert.deepEqual(problems(kubectlPatchSchema, { resource: 'deployment/x', patch: '{not json' }),
      ['patch: "patch" given as text must be JSON (or write it as a YAML mapping/list instead of a string)']);
    assert.deepEqual(problems(kubectlPatchSchema, { resource: 'x' }), [
      'resource: "resource" must be kind/name like deployment/metrics-server or configmap/cloudcore (got "x")',
      'patch: missing required value "patch"',
    ]);
  });
});
