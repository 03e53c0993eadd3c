/**
 * The host step of an agent-upgrade rollout (`ferry agents upgrade`). The
 * rollout engine is the plan rollouts' one (waves, budgets, pause, abort,
 * watch); only what a host is sent and how its result comes back differ:
 *
 * - start: the host is sent an AgentUpgrade over its session naming the
 *   release bundle for its architecture, with the host attempt's id as the
 *   upgrade id;
 * - result: the agent reports outcomes (upgrade reports and every hello),
 *   which the session service records in agent_upgrades per (agent, upgrade
 *   id). The scheduler reads them like job rows: committed (the new version
 *   reconnected over mTLS and passed its self-check) is `succeeded`;
 *   rolled-back and refused are `failed`, with the reason and the new
 *   version's last log lines as the host's message. Because they are read
 *   from the store, a report that reached another replica, or came in while
 *   this controller was down, counts the same.
 *
 * An upgrade in flight cannot be cancelled (the host is mid-switch; its
 * watcher commits or rolls back by itself): an abort waits for it.
 */
import { platformArch } from '../../../common/src/arch.js';
import { releaseArch } from '../../../common/src/bundle/agent-release.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { JobBundle, SignedPlan } from '../../../common/src/gen/ferry/v1/session.js';
import type { BundleStore } from '../bundles/bundle-store.js';
import type { SessionRegistry } from '../sessions/registry.js';
import type { AgentUpgradeRecord, AgentUpgradeStore, UpgradeEventBody } from '../store/agent-upgrades.js';
import type { AgentRecord } from '../store/agents.js';
import type { DispatchInfo } from './active-rollout.js';
import type { HostModel } from './model.js';
import type { UpgradeSpec } from './spec.js';

/** An upgrade rollout sends no plan; its DispatchInfo carries this in the plan's place (never sent). */
export const NO_PLAN: SignedPlan = { plan: '', signature: '', keyId: '', file: '' };

/** The architecture of an agent as the controller knows it (facts, else the ferry/arch label). */
export function agentArch(a: Pick<AgentRecord, 'facts' | 'labels'>): string {
  return platformArch(a.facts?.arch || a.labels['ferry/arch'] || '');
}

/**
 * The release bundles of `spec.version`, one per architecture, for the
 * targets; refuses when there is none, or when a target's architecture has
 * none (naming the hosts and the command that adds it).
 */
export async function releasesFor(bundles: Pick<BundleStore, 'list'>, spec: UpgradeSpec, targets: readonly AgentRecord[]): Promise<JobBundle[]> {
  const byArch = new Map<string, JobBundle>();
  for (const b of await bundles.list()) {
    const arch = releaseArch(b.manifest.name);
    if (arch && b.manifest.version === spec.version) byArch.set(arch, { as: arch, bundleId: b.id, signed: b.signed });
  }
  if (byArch.size === 0) {
    throw new FerryError(ErrorCode.NotFound, `there is no agent release ${spec.version} on the controller`,
      `add it first: ferry agents release add dist/ferry-agent-linux-amd64 dist/ferry-agent-linux-arm64 --key KEY (ferry agents release ls lists releases)`);
  }
  const lacking = targets.filter((t) => !byArch.has(agentArch(t)));
  if (lacking.length > 0) {
    const arches = [...new Set(lacking.map(agentArch))];
    throw new FerryError(ErrorCode.NotFound,
      `agent release ${spec.version} has no binary for ${arches.map((x) => x || 'an unknown architecture').join(', ')}, which ${lacking.length} target(s) run (${lacking.slice(0, 5).map((t) => t.hostname).join(', ')}${lacking.length > 5 ? ', …' : ''})`,
      `add it: ferry agents release add dist/ferry-agent-linux-${arches[0] || 'ARCH'} --key KEY, or leave those hosts out (--exclude or a narrower --selector)`);
  }
  const used = new Set(targets.map(agentArch));
  return [...byArch.values()].filter((b) => used.has(b.as)).sort((x, y) => x.as.localeCompare(y.as));
}

/** A final outcome as the rollout's host result, or undefined while the upgrade is under way. */
export function upgradeResult(r: AgentUpgradeRecord | undefined): { status: 'succeeded' | 'failed'; message: string } | undefined {
  if (!r || r.outcome === 'in-progress') return undefined;
  if (r.outcome === 'committed') return { status: 'succeeded', message: `${r.fromVersion} → ${r.toVersion} committed: ${r.reason}` };
  const tail = r.logTail.length ? `; last log lines of ${r.toVersion}: ${r.logTail.slice(-5).join(' ⏎ ')}` : '';
  return { status: 'failed', message: `${r.outcome}${r.errorCode ? ` (${r.errorCode})` : ''}: ${r.reason}${tail}`.slice(0, 4000) };
}

/**
 * One stored upgrade report (job_events kind `upgrade`) as lines of the
 * host's log: what happened, then the new version's last log lines (rolled
 * back) as output lines.
 */
export function upgradeLogLines(body: string): Array<{ kind: string; text: string; stderr: boolean }> {
  const b = JSON.parse(body) as UpgradeEventBody;
  const what = b.outcome === 'in-progress' ? `${b.fromVersion} → ${b.toVersion}` : `${b.fromVersion} → ${b.toVersion} ${b.outcome}${b.errorCode ? ` (${b.errorCode})` : ''}`;
  const lines = [{ kind: 'upgrade', text: `upgrade ${what}: ${b.reason}`, stderr: false }];
  if (b.logTail.length) lines.push({ kind: 'upgrade', text: `last log lines of ${b.toVersion}:`, stderr: false });
  for (const l of b.logTail) lines.push({ kind: 'output', text: l, stderr: false });
  return lines;
}

/** Sends and reads back the upgrades of one controller's rollouts; see the module comment. */
export class UpgradeHosts {
  constructor(
    private readonly sessions: Pick<SessionRegistry, 'get'>,
    private readonly upgrades: Pick<AgentUpgradeStore, 'forUpgradePrefix'>,
    private readonly agents: { arch(agentId: string): Promise<string | undefined> },
  ) {}

  /**
   * Sends host `h` its upgrade if its session is on this replica (true).
   * Sent again when the agent reconnects while no outcome is recorded, and
   * by the replica holding the session when that is not the scheduler's
   * (upgrade-mailbox.ts): the agent answers an upgrade id it already has
   * with its report, never a second upgrade.
   */
  async send(dispatch: DispatchInfo, spec: UpgradeSpec, h: Pick<HostModel, 'agentId' | 'hostJobId'>): Promise<boolean> {
    const s = this.sessions.get(h.agentId);
    if (!s || !h.hostJobId) return false;
    const arch = await this.agents.arch(h.agentId);
    const b = dispatch.bundles.find((x) => x.as === arch);
    if (!b?.signed) return false;
    s.send({ msg: { $case: 'upgrade', value: {
      upgradeId: h.hostJobId, version: spec.version, bundleId: b.bundleId, signed: b.signed, file: 'ferry-agent',
      retryFailed: spec.retryFailed, connectWindowMs: spec.connectWindowMs,
    } } });
    return true;
  }

  /** Outcomes recorded for this rollout's upgrades (upgrade id → record); ids start with the rollout's job id. */
  async outcomes(jobId: string): Promise<Map<string, AgentUpgradeRecord>> {
    return new Map((await this.upgrades.forUpgradePrefix(`${jobId}-`)).map((r) => [r.upgradeId, r]));
  }
}
