/**
 * `kubectl.patch`: patch one object — seed 001's "set dynamicController.enable: true in the
 * cloudcore ConfigMap". kubectl reports "patched (no change)" when the object already has
 * the patch, which is how a second run reports `unchanged`; check mode uses
 * `--dry-run=server`, so the API server decides without storing anything.
 *
 * ```yaml
 * - id: cloudcore-dynamic-controller
 *   type: kubectl.patch
 *   args:
 *     kubeconfig: /etc/rancher/k3s/k3s.yaml
 *     namespace: kubeedge
 *     resource: deployment/cloudcore
 *     type: strategic
 *     patch: { spec: { template: { metadata: { annotations: { ferry/restart: "1" } } } } }
 *     waitFor: [{ resource: deployment/cloudcore, condition: Available, timeout: 2m }]
 * ```
 */
import { schema } from '../step-schema.js';
import { readKubectlTarget, readResource, readWaitFor, type KubectlTarget, type KubectlWait } from './kubectl-apply.js';

export type KubectlPatchType = 'strategic' | 'merge' | 'json';

export interface KubectlPatchArgs extends KubectlTarget {
  /** kind/name of the object to patch. */
  resource: string;
  /** The patch as JSON text (a mapping, or a list for type json). */
  patch: string;
  /** strategic (kubectl's default; built-in kinds only), merge (RFC 7386), json (RFC 6902 list of ops). */
  type: KubectlPatchType;
  waitFor: KubectlWait[];
}

/** Schema for `kubectl.patch`. */
export const kubectlPatchSchema = schema<KubectlPatchArgs>(
  'kubectl.patch',
  'kubectl patch one object (strategic, merge or json patch); unchanged when kubectl reports no change; optional waits',
  (r) => {
    const target = readKubectlTarget(r);
    const resource = readResource(r, 'resource');
    const type = r.oneOf<KubectlPatchType>('type', ['strategic', 'merge', 'json'], { default: 'strategic' })!;
    const raw = r.any('patch', { required: true });
    let value: unknown = raw;
    if (typeof raw === 'string') {
      try {
        value = JSON.parse(raw);
      } catch {
        r.problem('patch', '"patch" given as text must be JSON (or write it as a YAML mapping/list instead of a string)');
        value = undefined;
      }
    }
    if (value !== undefined && raw !== undefined) {
      if (type === 'json' && !Array.isArray(value)) r.problem('patch', 'a json patch is a list of operations like [{op: replace, path: /data/x, value: y}]');
      if (type !== 'json' && (typeof value !== 'object' || value === null || Array.isArray(value))) r.problem('patch', `a ${type} patch is a mapping of the fields to set`);
    }
    return { ...target, resource: resource!, patch: JSON.stringify(value ?? null), type, waitFor: readWaitFor(r) };
  },
);
