/**
 * `containerd.mirror` on the host (args: common/src/plan/steps/containerd-mirror.ts).
 *
 * Order matters, so a refusal changes nothing: first the TLS files hosts.toml will name must
 * exist (containerd would otherwise fail every pull with a TLS error far from the cause), then
 * config.toml must point containerd at certsDir (`check` fails with the exact lines to add;
 * `set` plans the edit), and only then are the hosts.toml files installed (one atomic write
 * each, backups of what they replace) and, for `set`, config.toml rewritten and containerd
 * restarted. containerd reads hosts.toml on every pull, so new mirror files need no restart.
 *
 * Each file goes through installFile (the one install path: unchanged when identical, diff,
 * check mode, backup, atomic write), so a second run reports `unchanged`.
 */
import { lstat } from 'node:fs/promises';
import { posix, relative } from 'node:path';
import { ErrorCode } from '../../../common/src/errors.js';
import { RELAY_MIRROR, type ContainerdMirrorArgs } from '../../../common/src/plan/steps/containerd-mirror.js';
import type { StepOutcome } from '../../../common/src/plan/types.js';
import type { StepContext, StepExecutor } from './step.js';
import { guarded, StepError } from './step-error.js';
import { runCommand } from './sys/run.js';
import { probeUnit, systemctl, waitActive } from './sys/systemctl.js';
import { configPathSnippet, inspectConfig, withConfigPath, type ConfigPathFinding } from './util/containerd-config.js';
import { readTextIfExists } from './util/file-ops.js';
import { hostPath, isInside, realTarget } from './util/host-path.js';
import { renderHostsToml } from './util/hosts-toml.js';
import { installFile } from './util/install-file.js';

const CONTAINERD_UNIT = 'containerd.service';

/** The `containerd.mirror` executor. */
export const containerdMirrorExecutor: StepExecutor<ContainerdMirrorArgs> = {
  type: 'containerd.mirror',
  run: (args, ctx) => guarded(ctx.signal, () => ensureMirror(args, ctx)),
};

interface TlsFiles { ca?: string; client?: [string, string] }

/**
 * An agent file as the host sees it. The agent's state directory is a real path; when the
 * agent manages a root other than "/" (running in a container with the host at /host), the
 * file must be inside that root for the host's containerd to read it.
 */
function hostView(ctx: StepContext, real: string): string {
  if (ctx.root === '/') return real;
  if (!isInside(ctx.root, real)) {
    throw new StepError(ErrorCode.InvalidArgument, `the agent's fleet file ${real} is outside the host root ${ctx.root}, so containerd on the host cannot read it`,
      'keep the agent\'s state directory inside the root it manages, or give "ca" and "client" as file paths on the host');
  }
  return posix.join('/', relative(ctx.root, real));
}

/** The CA and client files hosts.toml names (host paths), with `fleet` resolved to the agent's own files. */
function tlsFiles(args: ContainerdMirrorArgs, ctx: StepContext): TlsFiles {
  const needFleet = args.ca.kind === 'fleet' || args.client.kind === 'fleet';
  if (needFleet && !ctx.fleet) {
    throw new StepError(ErrorCode.NotEnrolled, 'this agent has no fleet certificate to hand to containerd ("ca: fleet" / "client: fleet")',
      'enroll the agent (ferry-agent join), or give "ca" and "client" as file paths');
  }
  const fleet = (p: string) => hostView(ctx, p);
  const ca = args.ca.kind === 'fleet' ? fleet(ctx.fleet!.ca) : args.ca.kind === 'file' ? args.ca.path : undefined;
  const client: [string, string] | undefined = args.client.kind === 'fleet' ? [fleet(ctx.fleet!.cert), fleet(ctx.fleet!.key)]
    : args.client.kind === 'files' ? [args.client.cert, args.client.key] : undefined;
  return { ...(ca ? { ca } : {}), ...(client ? { client } : {}) };
}

/**
 * The `relay` entry replaced by this host's relays' registry endpoints (most preferred first,
 * as assigned when the step runs; none without relays), so containerd tries the site relay and
 * then the next mirror, normally the controller. A reassignment takes effect when the step runs
 * again.
 */
function expandRelays(mirrors: readonly string[], ctx: StepContext): string[] {
  const out: string[] = [];
  for (const m of mirrors) {
    if (m !== RELAY_MIRROR) out.push(m);
    else for (const a of ctx.relayRegistries ?? []) if (!out.includes(`https://${a}`)) out.push(`https://${a}`);
  }
  if (mirrors.includes(RELAY_MIRROR)) ctx.output(`note: "relay" is ${ctx.relayRegistries?.length ? ctx.relayRegistries.map((a) => `https://${a}`).join(', ') : 'none (this host has no relay serving the registry)'}`);
  return out;
}

/** containerd's major version from `containerd --version`; undefined when it is not installed. */
async function containerdMajor(ctx: StepContext): Promise<number | undefined> {
  try {
    const r = await runCommand(ctx, ['containerd', '--version'], { stream: false, timeoutMs: 15_000 });
    const m = /\sv?(\d+)\.\d+/.exec(r.stdout);
    return m ? Number(m[1]) : undefined;
  } catch (e) {
    if (e instanceof StepError && e.code === ErrorCode.StepToolMissing) return undefined;
    throw e;
  }
}

interface ConfigPlan { finding: ConfigPathFinding; path: string; next?: string }

/** Reads config.toml and decides: fine, to be set, or a refusal with the exact lines to change. */
async function planConfig(args: ContainerdMirrorArgs, ctx: StepContext): Promise<ConfigPlan> {
  const shown = args.configFile;
  let path = hostPath(ctx, shown);
  if ((await lstat(path).catch(() => undefined))?.isSymbolicLink()) path = await realTarget(ctx, path, shown);
  const text = readTextIfExists(path);
  let major = await containerdMajor(ctx);
  if (major === undefined) {
    if (text === undefined) {
      throw new StepError(ErrorCode.StepToolMissing, `containerd is not installed on this host and ${shown} does not exist`,
        'install containerd before this step, or give "containerdConfig: skip" if only ctr --hosts-dir will read the files');
    }
    major = /^\s*version\s*=\s*3\b/m.test(text) ? 2 : 1;
  }
  let finding: ConfigPathFinding;
  try {
    finding = inspectConfig(text, major, args.certsDir, shown);
  } catch (e) {
    throw new StepError(ErrorCode.Config, (e as Error).message, `fix ${shown} (containerd will not start with it either)`);
  }
  if (finding.conflicts.length) {
    throw new StepError(ErrorCode.Config, `${shown} sets ${finding.conflicts.join(' and ')}, which containerd refuses together with config_path`,
      `move those mirrors and TLS settings into hosts.toml files (this step writes them) and delete them from ${shown}`);
  }
  if (finding.ok) return { finding, path };
  const now = finding.configured === undefined ? `config_path is not set${finding.effective ? ` (containerd ${major}.x uses "${finding.effective}")` : ` (containerd ${major}.x then reads no hosts.toml at all)`}` : `config_path is "${finding.configured}"`;
  if (args.containerdConfig === 'check') {
    throw new StepError(ErrorCode.Config,
      `${text === undefined ? `${shown} does not exist` : shown} does not point containerd at ${args.certsDir}: ${now}; kubelet's pulls would ignore the mirror files`,
      `put these lines in ${shown}:\n${configPathSnippet(finding, args.certsDir)}\nthen run systemctl restart containerd — or give this step "containerdConfig: set" to do both (it keeps a backup; comments in ${shown} are not kept)`);
  }
  return { finding, path, next: withConfigPath(text, finding, args.certsDir, shown) };
}

async function ensureMirror(args: ContainerdMirrorArgs, ctx: StepContext): Promise<StepOutcome> {
  const tls = tlsFiles(args, ctx);
  const notes: string[] = [];
  const tlsPaths = [tls.ca, ...(tls.client ?? [])].filter((p): p is string => p !== undefined);
  const missing = [];
  for (const p of tlsPaths) if (!(await lstat(hostPath(ctx, p)).then((s) => s.isFile() || s.isSymbolicLink(), () => false))) missing.push(p);
  if (missing.length) {
    if (!ctx.check) {
      throw new StepError(ErrorCode.StepInputMissing, `hosts.toml would name ${missing.join(', ')}, which ${missing.length > 1 ? 'do' : 'does'} not exist on this host; nothing was written`,
        'install the CA/certificate first (file.install), or fix "ca"/"client"');
    }
    notes.push(`missing now: ${missing.join(', ')}`);
  }

  const config = args.containerdConfig === 'skip' ? undefined : await planConfig(args, ctx);
  for (const n of config?.finding.notes ?? []) ctx.output(`note: ${n}`);

  const mirrors = expandRelays(args.mirrors, ctx);
  const upstreams = [...args.upstreams, ...(args.writeDefault ? ['_default'] : [])];
  const diffs: string[] = [];
  const changed: string[] = [];
  for (const upstream of upstreams) {
    // On Linux containerd looks the registry up by its name with the port: certs.d/sea.hub:5000/.
    const dest = posix.join(args.certsDir, upstream, 'hosts.toml');
    const text = renderHostsToml({
      upstream, mirrors, capabilities: args.capabilities, ...tls, dialTimeoutMs: args.dialTimeoutMs, offline: args.offline,
    });
    const out = await installFile(ctx, dest, { bytes: Buffer.from(text) }, { mode: 0o644, backup: args.backup });
    if (out.status === 'changed') { changed.push(upstream); if (out.diff) diffs.push(out.diff); }
    if (out.status === 'failed') return { ...out, diff: diffs.join('') };
  }

  let configNote = config ? `config_path in ${args.configFile} ok` : 'config.toml not checked';
  if (config?.next !== undefined) {
    const out = await installFile(ctx, args.configFile, { bytes: Buffer.from(config.next) }, { backup: args.backup });
    if (out.diff) diffs.push(out.diff);
    configNote = `${ctx.check ? 'would set' : 'set'} config_path = "${args.certsDir}" in ${args.configFile}`;
    if (out.status === 'changed') configNote += await restartContainerd(ctx);
  }

  const where = `${upstreams.join(', ')} → ${args.mirrors.join(', ')} (${args.offline ? 'mirror only' : 'upstream fallback'})`;
  const did = changed.length === 0 ? 'hosts.toml unchanged' : `${ctx.check ? 'would write' : 'wrote'} hosts.toml for ${changed.join(', ')}`;
  const tail = [configNote, ...notes].join('; ');
  const anyChange = changed.length > 0 || (config?.next !== undefined && diffs.length > 0);
  if (!anyChange) return { status: 'unchanged', message: `${where}: ${did}; ${tail}` };
  return { status: 'changed', diff: diffs.join(''), message: `${ctx.check ? 'check mode: ' : ''}${where}: ${did}; ${tail}` };
}

/** After config.toml changed: restart containerd if it runs (it reads config.toml only at start). */
async function restartContainerd(ctx: StepContext): Promise<string> {
  if (ctx.root !== '/') return '; restart containerd on the host to apply it (the agent manages a root other than /)';
  if (ctx.check) return '; would restart containerd if it is running';
  const probe = await probeUnit(ctx, CONTAINERD_UNIT);
  if (probe.activeState !== 'active') return `; containerd is ${probe.activeState || 'not running'}, it reads the file when it starts`;
  await systemctl(ctx, ['restart', CONTAINERD_UNIT], 'could not restart containerd after setting config_path');
  await waitActive(ctx, CONTAINERD_UNIT, 60_000, 1000);
  return '; restarted containerd';
}
