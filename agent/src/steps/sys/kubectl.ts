/**
 * Running kubectl for kubectl.apply / kubectl.patch: the exact argv (built by pure functions
 * so tests and check mode can show it), reading what kubectl says (which objects changed,
 * whether the API server was reachable), and `kubectl wait`.
 */
import { ErrorCode } from '../../../../common/src/errors.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KubectlTarget, KubectlWait } from '../../../../common/src/plan/steps/kubectl-apply.js';
import { runCommand, shellQuote, type RunContext, type RunResult } from './run.js';
import { section, StepError } from '../step-error.js';

/** `kubectl` (or `k3s kubectl`) with the target's --kubeconfig, --context and -n. */
export function kubectlBase(t: KubectlTarget): string[] {
  return [
    ...(t.k3s ? ['k3s', 'kubectl'] : ['kubectl']),
    ...(t.kubeconfig ? ['--kubeconfig', t.kubeconfig] : []),
    ...(t.context ? ['--context', t.context] : []),
    ...(t.namespace ? ['-n', t.namespace] : []),
  ];
}

/** `kubectl wait` argv for one waitFor entry. */
export function waitArgv(t: KubectlTarget, w: KubectlWait): string[] {
  const cond = /^(condition=|jsonpath=|delete$|create$)/.test(w.condition) ? w.condition : `condition=${w.condition}`;
  const base = kubectlBase(w.namespace ? { ...t, namespace: w.namespace } : t);
  return [...base, 'wait', `--for=${cond}`, w.resource, `--timeout=${Math.max(1, Math.ceil(w.timeoutMs / 1000))}s`];
}

const UNREACHABLE = /connection refused|was refused|dial tcp|no such host|i\/o timeout|unable to connect to the server|tls handshake timeout|no route to host|network is unreachable|connection reset/i;

/** kubectl's stderr without klog's repeated "E1122 ... memcache.go" lines. */
export function kubectlSaid(r: RunResult): string {
  const lines = `${r.stderr}${r.stdout}`.split('\n').filter((l) => l.trim() && !/^[EWI]\d{4} /.test(l));
  return lines.slice(-20).join('\n') || `${r.stderr}${r.stdout}`.trim();
}

/** Makes sure a configured kubeconfig exists before kubectl prints a stat error for it. */
export function requireKubeconfig(t: KubectlTarget, root: string): void {
  if (t.kubeconfig && !existsSync(join(root, t.kubeconfig))) {
    throw new StepError(ErrorCode.StepInputMissing, `kubeconfig ${t.kubeconfig} does not exist on this host`,
      t.k3s ? 'is k3s installed and started? (it writes /etc/rancher/k3s/k3s.yaml)' : 'install the kubeconfig first (file.install) or fix "kubeconfig"');
  }
}

/** A StepError for a failed kubectl run: unreachable API servers get their own code and hint. */
export function kubectlError(r: RunResult, what: string): StepError {
  const said = kubectlSaid(r);
  const argv = shellQuote(r.argv);
  if (UNREACHABLE.test(said)) {
    return new StepError(ErrorCode.StepServiceUnreachable, `${what}: the Kubernetes API server is not reachable from this host`,
      'check that the cluster is up and that the kubeconfig\'s server address is right for this host, then run the step again',
      section(argv, said));
  }
  return new StepError(ErrorCode.StepCommandFailed, `${what}: kubectl failed (exit ${r.exitCode})`, 'read kubectl\'s message below, fix the manifest or args, and run the step again', section(argv, said));
}

/** Runs kubectl; missing kubectl becomes a clear StepError. */
export function kubectl(ctx: RunContext, t: KubectlTarget, argv: string[], input?: string, stream = true): Promise<RunResult> {
  return runCommand(ctx, argv, {
    stream, tool: t.k3s ? 'k3s' : 'kubectl', ...(input !== undefined ? { input } : {}),
    installHint: t.k3s ? 'install k3s on this host, or set k3s: false to use kubectl' : 'install kubectl on this host (it ships in the bundle\'s bin/ in offline packages), or set k3s: true on k3s hosts',
  });
}

/**
 * Objects kubectl apply/patch reported, and whether any changed. Lines look like
 * `configmap/x created|configured|unchanged|serverside-applied` and
 * `configmap/x patched` / `configmap/x patched (no change)`.
 */
export function parseChanges(stdout: string): { changed: string[]; unchanged: string[] } {
  const changed: string[] = [];
  const unchanged: string[] = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.trim().replace(/ \((server|client) dry run\)$/, '');
    if (!line) continue;
    if (/ (unchanged|patched \(no change\))$/.test(line)) unchanged.push(line);
    else changed.push(line);
  }
  return { changed, unchanged };
}

/** Runs each waitFor in order; throws on the first that does not hold in time. */
export async function runWaits(ctx: RunContext, t: KubectlTarget, waits: readonly KubectlWait[]): Promise<string[]> {
  const done: string[] = [];
  for (const w of waits) {
    const argv = waitArgv(t, w);
    const r = await kubectl(ctx, t, argv);
    if (r.exitCode !== 0) {
      const e = kubectlError(r, `waiting for ${w.resource} (${w.condition})`);
      if (e.code === ErrorCode.StepServiceUnreachable) throw e;
      throw new StepError(ErrorCode.StepWaitFailed, `${w.resource} did not reach ${w.condition} within ${Math.ceil(w.timeoutMs / 1000)}s`,
        `inspect it with kubectl describe ${w.resource}${w.namespace ?? t.namespace ? ` -n ${w.namespace ?? t.namespace}` : ''}; raise the timeout if it is just slow`, e.details);
    }
    done.push(`${w.resource} ${w.condition}`);
  }
  return done;
}
