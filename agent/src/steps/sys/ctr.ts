/**
 * The containerd client calls image.import makes, through the host's real `ctr` (or `k3s
 * ctr`): list images with their target digests, read a manifest/index blob, import a tar,
 * tag, and remove. Errors name the socket, the namespace and ctr's own words.
 */
import { ErrorCode } from '../../../../common/src/errors.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { commandError, runCommand, runOk, type RunContext } from './run.js';
import { StepError } from '../step-error.js';

export const DEFAULT_CONTAINERD_SOCKET = '/run/containerd/containerd.sock';
export const K3S_CONTAINERD_SOCKET = '/run/k3s/containerd/containerd.sock';

export interface CtrOptions {
  namespace: string;
  address?: string;
  k3s: boolean;
  /** Host root, for checking the socket exists (tests run the agent against a fake root). */
  root: string;
}

/** A ctr client bound to one containerd socket and namespace. */
export class Ctr {
  readonly socket: string;
  private readonly base: string[];
  private readonly tool: string;
  private readonly blobs = new Map<string, unknown>();

  constructor(private readonly ctx: RunContext, private readonly o: CtrOptions) {
    this.socket = o.address ?? (o.k3s ? K3S_CONTAINERD_SOCKET : DEFAULT_CONTAINERD_SOCKET);
    this.tool = o.k3s ? 'k3s' : 'ctr';
    this.base = [...(o.k3s ? ['k3s', 'ctr'] : ['ctr']), ...(o.address ? ['--address', o.address] : []), '-n', o.namespace];
  }

  get where(): string {
    return `containerd at ${this.socket} (namespace ${this.o.namespace})`;
  }

  argv(args: string[]): string[] {
    return [...this.base, ...args];
  }

  private hint(): string {
    return this.o.k3s ? 'start k3s (systemctl start k3s) or fix "address"' : 'start containerd (systemctl enable --now containerd) or fix "address"';
  }

  /** Fails fast and clearly when the socket is absent (ctr itself would wait 10 s and say "context deadline exceeded"). */
  requireSocket(): void {
    if (!existsSync(join(this.o.root, this.socket))) {
      throw new StepError(ErrorCode.StepServiceUnreachable, `containerd is not running on this host: socket ${this.socket} does not exist`, this.hint());
    }
  }

  /** `ctr images ls`: ref → target digest. */
  async list(): Promise<Map<string, string>> {
    const r = await runCommand(this.ctx, this.argv(['images', 'ls']), { stream: false, tool: this.tool });
    if (r.exitCode !== 0) {
      const code = /dial|connect|deadline|connection/i.test(r.stderr) ? ErrorCode.StepServiceUnreachable : ErrorCode.StepCommandFailed;
      throw commandError(r, `cannot list images in ${this.where}`, this.hint(), code);
    }
    const out = new Map<string, string>();
    // Columns: REF TYPE DIGEST SIZE PLATFORMS LABELS; the first three never contain spaces.
    for (const line of r.stdout.split('\n').slice(1)) {
      const [ref, , digest] = line.trim().split(/\s+/);
      if (ref && digest?.startsWith('sha256:')) out.set(ref, digest);
    }
    return out;
  }

  /** A manifest or index blob as JSON (cached); undefined when it is not in the content store. */
  async blobJson(digest: string): Promise<unknown> {
    if (this.blobs.has(digest)) return this.blobs.get(digest);
    const r = await runCommand(this.ctx, this.argv(['content', 'get', digest]), { stream: false, tool: this.tool });
    let v: unknown;
    try { v = r.exitCode === 0 ? JSON.parse(r.stdout) : undefined; } catch { v = undefined; }
    if (v !== undefined) this.blobs.set(digest, v); // absent now may be present after an import
    return v;
  }

  /** `ctr images import FILE`, output streamed; throws with ctr's stderr. */
  async importTar(file: string, label: string): Promise<void> {
    await runOk(this.ctx, this.argv(['images', 'import', file]), `ctr could not import ${label} into ${this.where}`,
      'read ctr\'s message: a damaged tar needs the bundle re-staged; "no space left" needs disk space; then run the step again', { tool: this.tool });
  }

  /** `ctr images tag --force SRC DST` (a new name for the same target). */
  async tag(src: string, dst: string): Promise<void> {
    await runOk(this.ctx, this.argv(['images', 'tag', '--force', src, dst]), `ctr could not tag ${src} as ${dst}`, 'check that the source image is present', { stream: false, tool: this.tool });
  }

  /** `ctr images rm REF...` (the content goes with containerd's garbage collection). */
  async remove(refs: string[]): Promise<void> {
    if (refs.length) await runOk(this.ctx, this.argv(['images', 'rm', ...refs]), `ctr could not remove ${refs.join(', ')}`, 'remove them by hand with ctr images rm', { stream: false, tool: this.tool });
  }
}
