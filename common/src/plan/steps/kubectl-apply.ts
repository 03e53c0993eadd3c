/**
 * `kubectl.apply`: apply manifests from a bundle or inline, then optionally wait for
 * conditions — seed 001's "apply the Istio CRDs before EdgeMesh". The agent runs `kubectl
 * diff` first: no difference means `unchanged` without applying; in check mode the diff is
 * the outcome. Also home of the readers kubectl.patch shares (cluster target, waitFor).
 *
 * ```yaml
 * - id: istio-crds
 *   type: kubectl.apply
 *   args:
 *     kubeconfig: /etc/rancher/k3s/k3s.yaml
 *     bundle: edgemesh
 *     files: [crds/istio/*.yaml]
 *     serverSide: true
 *     waitFor: [{ resource: crd/gateways.networking.istio.io, condition: Established, timeout: 60s }]
 * ```
 */
import { schema, type ArgReader } from '../step-schema.js';
import { readDuration } from './exec.js';
import { readAbsPath } from './file-install.js';
import { readBundlePaths } from './systemd-unit.js';

/** Which cluster and how to reach it; unset fields use kubectl's own defaults. */
export interface KubectlTarget {
  /** Absolute host path of the kubeconfig (kubectl's default: $KUBECONFIG, ~/.kube/config). */
  kubeconfig?: string;
  context?: string;
  /** Default namespace for namespaced objects without one (`-n`). */
  namespace?: string;
  /** Use `k3s kubectl` (k3s's bundled kubectl and its kubeconfig). */
  k3s: boolean;
}

/** `kubectl wait --for=<condition> <resource> --timeout=<t>`. */
export interface KubectlWait {
  /** kind/name, e.g. deployment/metrics-server or crd/gateways.networking.istio.io. */
  resource: string;
  /** A condition name (Available, Ready, Established), or a full `--for` value: delete, condition=X=false, jsonpath=... */
  condition: string;
  timeoutMs: number;
  namespace?: string;
}

export interface KubectlApplyArgs extends KubectlTarget {
  bundle?: string;
  /** Manifest paths (files or directories) inside the bundle; globs allowed, each must match. */
  files?: string[];
  /** Inline YAML/JSON manifest(s), fed to kubectl on stdin. */
  manifest?: string;
  /** `--server-side` apply (needed for large CRDs whose last-applied annotation would not fit). */
  serverSide: boolean;
  /** With serverSide: take over fields other managers own (`--force-conflicts`). */
  forceConflicts: boolean;
  /** `--field-manager`; default "ferry", so `managedFields` show who applied what. */
  fieldManager: string;
  waitFor: KubectlWait[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/;

/** Reads kubeconfig/context/namespace/k3s. */
export function readKubectlTarget(r: ArgReader): KubectlTarget {
  const context = r.string('context');
  if (context !== undefined && !NAME.test(context)) r.problem('context', `"context" must be a kubeconfig context name (got "${context}")`);
  const namespace = r.string('namespace');
  if (namespace !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace)) r.problem('namespace', `"namespace" must be a Kubernetes namespace name (got "${namespace}")`);
  return { kubeconfig: readAbsPath(r, 'kubeconfig', false), context, namespace, k3s: r.bool('k3s', { default: false })! };
}

/** Reads `kind/name` (kubectl's TYPE/NAME form). */
export function readResource(r: ArgReader, key: string): string | undefined {
  const v = r.string(key, { required: true });
  if (v !== undefined && !/^[A-Za-z0-9.-]+\/[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(v)) {
    r.problem(key, `"${key}" must be kind/name like deployment/metrics-server or configmap/cloudcore (got "${v}")`);
    return undefined;
  }
  return v;
}

/** Reads `waitFor: [{resource, condition, timeout, namespace}]`. */
export function readWaitFor(r: ArgReader): KubectlWait[] {
  return r.objects<KubectlWait>('waitFor', (w) => {
    const resource = readResource(w, 'resource');
    const condition = w.string('condition', { required: true });
    if (condition !== undefined && !/^[\w.=/\-[\]{}'"$:@ ]+$/.test(condition)) w.problem('condition', `"condition" has characters kubectl --for would not accept (got "${condition}")`);
    const timeoutMs = readDuration(w, 'timeout', { default: 60_000, min: 1000 }) ?? 60_000;
    const namespace = w.string('namespace');
    return resource && condition ? { resource, condition, timeoutMs, ...(namespace ? { namespace } : {}) } : undefined;
  }) ?? [];
}

/** Schema for `kubectl.apply`. */
export const kubectlApplySchema = schema<KubectlApplyArgs>(
  'kubectl.apply',
  'kubectl apply manifests from a bundle or inline (client- or server-side), unchanged when kubectl diff shows nothing; optional waits',
  (r) => {
    const target = readKubectlTarget(r);
    const bundle = r.string('bundle');
    const files = readBundlePaths(r, 'files');
    const manifest = r.string('manifest');
    if (files && bundle === undefined) r.problem('bundle', '"files" are paths inside a bundle: give "bundle" (the plan\'s alias for it)');
    if (bundle !== undefined && !files) r.problem('files', '"bundle" needs "files": manifest paths inside it');
    if (!files && manifest === undefined) r.problem('', 'give "bundle" + "files" (manifests in a bundle) or "manifest" (inline YAML)');
    if (manifest !== undefined && !manifest.trim()) r.problem('manifest', '"manifest" must not be empty');
    const serverSide = r.bool('serverSide', { default: false })!;
    const forceConflicts = r.bool('forceConflicts', { default: false })!;
    if (forceConflicts && !serverSide) r.problem('forceConflicts', '"forceConflicts" only applies with serverSide: true');
    const fieldManager = r.string('fieldManager', { default: 'ferry' })!;
    if (!NAME.test(fieldManager)) r.problem('fieldManager', `"fieldManager" must be a simple name (got "${fieldManager}")`);
    return { ...target, bundle, files, manifest, serverSide, forceConflicts, fieldManager, waitFor: readWaitFor(r) };
  },
);
