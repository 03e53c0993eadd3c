/**
 * kubectl.apply / kubectl.patch WITHOUT a live cluster: no Kubernetes API server can be had
 * offline on this machine, and a fake one would only test the fake. What is tested: the
 * exact argv the executors run (check mode shows them), and — with the real kubectl binary
 * against a port nothing listens on — that an unreachable API server, a missing kubeconfig
 * and a missing kubectl each fail clearly. Creating, diffing and patching real objects is NOT
 * tested here.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyCommands, kubectlApplyExecutor } from '../../../agent/src/steps/kubectl-apply.js';
import { kubectlPatchExecutor, patchArgv } from '../../../agent/src/steps/kubectl-patch.js';
import type { StepContext } from '../../../agent/src/steps/step.js';
import { kubectlApplySchema, type KubectlApplyArgs } from '../../../common/src/plan/steps/kubectl-apply.js';
import { kubectlPatchSchema, type KubectlPatchArgs } from '../../../common/src/plan/steps/kubectl-patch.js';

const dir = mkdtempSync(join(tmpdir(), 'ferry-kubectl-'));
const applyArgs = (raw: Record<string, unknown>) => kubectlApplySchema.parse(raw).args as KubectlApplyArgs;
const patchArgs = (raw: Record<string, unknown>) => kubectlPatchSchema.parse(raw).args as KubectlPatchArgs;

function ctx(check: boolean): StepContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    check, params: {}, facts: {}, labels: {}, stateDir: dir, root: '/', signal: new AbortController().signal, lines,
    bundleDir: (as) => { if (as !== 'edgemesh') throw new Error('not staged'); return join(dir, 'bundle'); },
    output: (l) => lines.push(l),
  };
}

function hasKubectl(): boolean {
  try { execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' }); return true; } catch { return false; }
}

/** A kubeconfig for 127.0.0.1:<port> where nothing listens (the port was just freed). */
async function deadKubeconfig(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  const path = join(dir, 'dead.kubeconfig');
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config', 'current-context: edge',
    'clusters: [{name: c, cluster: {server: "https://127.0.0.1:' + port + '", insecure-skip-tls-verify: true}}]',
    'users: [{name: u, user: {token: t}}]', 'contexts: [{name: edge, context: {cluster: c, user: u}}]', '',
  ].join('\n'));
  return path;
}

describe('kubectl.apply / kubectl.patch: commands (no live cluster)', () => {
  before(() => {
    mkdirSync(join(dir, 'bundle', 'crds', 'istio'), { recursive: true });
    for (const f of ['gateways.yaml', 'destinationrules.yaml']) writeFileSync(join(dir, 'bundle', 'crds', 'istio', f), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('builds diff, apply and wait argv for files, inline manifests and server-side apply', () => {
    const a = applyArgs({
      kubeconfig: '/etc/rancher/k3s/k3s.yaml', namespace: 'kubeedge', bundle: 'edgemesh', files: ['crds/istio/*.yaml'],
      manifest: 'kind: ConfigMap', serverSide: true, forceConflicts: true,
      waitFor: [{ resource: 'deployment/edgemesh-agent', condition: 'Available', timeout: '2m' }, { resource: 'pod/x', condition: 'delete', namespace: 'default' }],
    });
    const c = applyCommands(a, ['/b/crds/istio/destinationrules.yaml', '/b/crds/istio/gateways.yaml']);
    const base = ['kubectl', '--kubeconfig', '/etc/rancher/k3s/k3s.yaml', '-n', 'kubeedge'];
    const src = ['-f', '/b/crds/istio/destinationrules.yaml', '-f', '/b/crds/istio/gateways.yaml', '-f', '-'];
    assert.deepEqual(c.diff, [...base, 'diff', '--server-side', '--force-conflicts', '--field-manager=ferry', ...src]);
    assert.deepEqual(c.apply, [...base, 'apply', '--server-side', '--force-conflicts', '--field-manager=ferry', ...src]);
    assert.deepEqual(c.waits, [
      [...base, 'wait', '--for=condition=Available', 'deployment/edgemesh-agent', '--timeout=120s'],
      ['kubectl', '--kubeconfig', '/etc/rancher/k3s/k3s.yaml', '-n', 'default', 'wait', '--for=delete', 'pod/x', '--timeout=60s'],
    ]);
    assert.equal(c.input, 'kind: ConfigMap');
    const k3s = applyCommands(applyArgs({ k3s: true, context: 'edge', manifest: 'x' }), []);
    assert.deepEqual(k3s.apply, ['k3s', 'kubectl', '--context', 'edge', 'apply', '--field-manager=ferry', '-f', '-']);
  });

  it('builds the patch argv; check mode adds --dry-run=server', () => {
    const p = patchArgs({ namespace: 'kubeedge', resource: 'configmap/cloudcore', type: 'merge', patch: { data: { a: 'b' } } });
    assert.deepEqual(patchArgv(p, false), ['kubectl', '-n', 'kubeedge', 'patch', 'configmap/cloudcore', '--type=merge', '-p', '{"data":{"a":"b"}}', '--field-manager=ferry']);
    assert.deepEqual(patchArgv(p, true).slice(-1), ['--dry-run=server']);
  });

  it('fails clearly when the kubeconfig is missing (before running kubectl)', async () => {
    const out = await kubectlApplyExecutor.run(applyArgs({ kubeconfig: '/etc/ferry-nowhere/k3s.yaml', manifest: 'x' }), ctx(false));
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'STEP_INPUT_MISSING');
    assert.match(out.message, /^kubeconfig \/etc\/ferry-nowhere\/k3s\.yaml does not exist on this host\. Next: install the kubeconfig first/);
  });

  it('fails clearly when kubectl is not installed', async () => {
    const saved = process.env.PATH;
    process.env.PATH = join(dir, 'empty-bin'); // honest: kubectl is simply not on the agent's PATH
    try {
      const out = await kubectlPatchExecutor.run(patchArgs({ resource: 'configmap/x', patch: { a: 1 } }), ctx(false));
      assert.equal(out.errorCode, 'STEP_TOOL_MISSING');
      assert.match(out.message, /^kubectl is not installed on this host .*Next: install kubectl on this host/);
    } finally {
      process.env.PATH = saved;
    }
  });

  describe('with the real kubectl and an API server that is not there', function () {
    this.timeout(60_000);
    let kubeconfig = '';
    before(async function () {
      if (!hasKubectl()) {
        console.log('      SKIP: kubectl is not installed on this machine');
        this.skip();
      }
      kubeconfig = await deadKubeconfig();
    });

    it('apply in check mode: unreachable, and the message lists the exact kubectl argv it would run', async () => {
      const c = ctx(true);
      const out = await kubectlApplyExecutor.run(applyArgs({ kubeconfig, namespace: 'kubeedge', bundle: 'edgemesh', files: ['crds/istio/*.yaml'], serverSide: true }), c);
      assert.equal(out.status, 'failed');
      assert.equal(out.errorCode, 'STEP_SERVICE_UNREACHABLE');
      assert.match(out.message, /^kubectl diff: the Kubernetes API server is not reachable from this host\. Next: check that the cluster is up/);
      assert.match(out.message, /connect: connection refused|was refused/);
      assert.ok(out.message.includes(`would run:\n# kubectl --kubeconfig ${kubeconfig} -n kubeedge apply --server-side --field-manager=ferry -f ${join(dir, 'bundle/crds/istio/destinationrules.yaml')} -f ${join(dir, 'bundle/crds/istio/gateways.yaml')}`), out.message);
    });

    it('apply and patch for real: unreachable, nothing half-done', async () => {
      const a = await kubectlApplyExecutor.run(applyArgs({ kubeconfig, manifest: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n' }), ctx(false));
      assert.equal(a.errorCode, 'STEP_SERVICE_UNREACHABLE');
      const p = await kubectlPatchExecutor.run(patchArgs({ kubeconfig, namespace: 'kubeedge', resource: 'configmap/cloudcore', type: 'merge', patch: { data: { x: 'y' } } }), ctx(true));
      assert.equal(p.errorCode, 'STEP_SERVICE_UNREACHABLE');
      assert.match(p.message, /^kubectl patch configmap\/cloudcore: the Kubernetes API server is not reachable/);
      assert.match(p.message, /--- kubectl --kubeconfig \S+ -n kubeedge patch configmap\/cloudcore --type=merge -p '\{"data":\{"x":"y"\}\}' --field-manager=ferry --dry-run=server ---/);
    });
  });
});
