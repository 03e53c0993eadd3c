/**
 * An upgrade sent by the controller (AgentUpgrade over the session), run
 * while this agent keeps working:
 *
 * 1. verify the release's manifest against the operator keys pinned at
 *    enrollment and check it is the release for this host's architecture,
 *    of the version announced, with one executable (agent-release.ts);
 * 2. stage it through the bundle cache like any bundle: only chunks this
 *    host lacks are fetched (the previous release's files and the running
 *    binary count as held), every chunk and the whole file are verified, an
 *    interrupted stage resumes;
 * 3. hand the staged file to startUpgrade (start-upgrade.ts: version and
 *    architecture check, disk, versioned install, switch, restart through
 *    systemd, watcher).
 *
 * Every outcome is reported at once (upgradeReport) and kept in the upgrade
 * state, which every hello resends; the new version's commit and the
 * watcher's rollback are reported by whichever version runs afterwards.
 * The same upgrade id sent again (the controller resends on reconnect) is
 * answered with its report, never run twice.
 */
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { platformArch } from '../../../common/src/arch.js';
import { RELEASE_FILE, releaseName } from '../../../common/src/bundle/agent-release.js';
import { verifyManifest } from '../../../common/src/bundle/manifest.js';
import { asFerryError, ErrorCode, FerryError } from '../../../common/src/errors.js';
import { AgentUpgradeOutcome, type AgentUpgrade, type AgentUpgradeReport, type BundleProgress, type BundleStage } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import type { AgentState } from '../state/agent-state.js';
import { startUpgrade } from './start-upgrade.js';
import type { UpgradeHost } from './upgrade-host.js';
import { loadUpgradeState, toReport, updateUpgradeState, type LastUpgrade } from './upgrade-state.js';

export interface ReleaseUpgradeDeps {
  state: AgentState;
  log: Logger;
  host: UpgradeHost;
  /** Stages a bundle (BundleStager.stage); `localFiles` may hold its chunks. */
  stage(req: BundleStage, progress: (p: BundleProgress) => void, localFiles: readonly string[]): Promise<void>;
  /** Where a staged bundle's files are (BundleCache.filesDir). */
  filesDir(bundleId: string): string;
  /** Sends a report now if connected (the next hello carries it otherwise). */
  report(r: AgentUpgradeReport): void;
  progress(p: BundleProgress): void;
  /** The agent's own window when the controller sets none (settings: upgrade-window). */
  defaultWindowMs?: number;
}

const mib = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;
const refused = (message: string, hint: string) => new FerryError(ErrorCode.UpgradeRefused, message, hint);

/** See the module comment. One upgrade at a time per agent process. */
export class ReleaseUpgrader {
  private running: string | undefined;

  constructor(private readonly d: ReleaseUpgradeDeps) {}

  /** Runs `u` (never throws: every failure becomes a refused report). */
  async handle(u: AgentUpgrade): Promise<void> {
    const dir = this.d.state.dir;
    const known = loadUpgradeState(dir);
    if (known.last?.upgradeId === u.upgradeId || known.pending?.id === u.upgradeId) {
      if (known.last?.upgradeId === u.upgradeId) this.d.report(toReport(known.last));
      return;
    }
    if (this.running === u.upgradeId) return;
    if (this.running) {
      this.refuse(u, refused(`another upgrade (${this.running}) is being staged on this host`, 'wait for it to end, then retry this host'));
      return;
    }
    this.running = u.upgradeId;
    const log = this.d.log.child({ upgrade: u.upgradeId, to: u.version });
    try {
      const underWay = (reason: string) => this.d.report({ upgradeId: u.upgradeId, fromVersion: FERRY_VERSION, toVersion: u.version, outcome: AgentUpgradeOutcome.AGENT_UPGRADE_OUTCOME_IN_PROGRESS, reason, logTail: [], timeMs: Date.now(), errorCode: '' });
      underWay('staging the release');
      const { source, fetched, total } = await this.stageRelease(u, log);
      underWay(`release staged and verified: ${mib(fetched)} fetched of ${mib(total)} (the rest from the running binary and earlier releases)`);
      const started = await startUpgrade({
        stateDir: dir, upgradeId: u.upgradeId, source, expectVersion: u.version, unit: this.d.host.ownUnit() ?? 'ferry-agent.service',
        windowMs: u.connectWindowMs || this.d.defaultWindowMs, retryFailed: u.retryFailed, host: this.d.host,
        onSwitched: (l) => this.d.report(toReport(l)),
      });
      log.info({ from: started.from, watcher: started.watcherUnit, deadlineMs: started.deadlineMs }, 'upgrade switched; the watcher restarts the agent');
    } catch (err) {
      this.refuse(u, asFerryError(err));
    } finally {
      this.running = undefined;
    }
  }

  /** Verifies and stages the release; returns the path of its executable and the bytes fetched. */
  private async stageRelease(u: AgentUpgrade, log: Logger): Promise<{ source: string; fetched: number; total: number }> {
    if (!u.signed) throw refused(`upgrade ${u.upgradeId} carries no release manifest`, 'the controller is newer or broken: send the upgrade again');
    const keys = this.d.state.load().identity.operatorKeys;
    const m = verifyManifest(u.signed, keys);
    const arch = platformArch();
    if (m.name !== releaseName(arch)) {
      throw refused(`the release sent (${m.name}) is not for this host's architecture (${arch})`, `the controller picks ${releaseName(arch)} by the host's ferry/arch; check the host's facts`);
    }
    if (m.version !== u.version) throw refused(`the release sent is ${m.version}, the upgrade asks for ${u.version}`, 'add the release again with the right version');
    if (u.file !== RELEASE_FILE || m.files.length !== 1 || m.files[0]!.path !== RELEASE_FILE) {
      throw refused(`release ${m.name}:${m.version} does not hold exactly the executable ${RELEASE_FILE}`, 'add the release with `ferry agents release add`');
    }
    const local = this.runningBinary();
    let failure: string | undefined;
    let fetched = 0;
    let total = 0;
    await this.d.stage({ bundleId: u.bundleId, signed: u.signed }, (p) => {
      if (p.error) failure = p.error;
      fetched = Number(p.bytesFetched);
      total = Number(p.bytesTotal);
      this.d.progress(p);
    }, local).catch((err: unknown) => {
      throw new FerryError(asFerryError(err).code, `staging release ${m.name}:${m.version} failed: ${failure ?? asFerryError(err).message}`, asFerryError(err).hint);
    });
    log.info({ release: `${m.name}:${m.version}` }, 'release staged and verified');
    return { source: join(this.d.filesDir(u.bundleId), RELEASE_FILE), fetched, total };
  }

  /** The binary this agent runs from (its chunks need not be fetched again); none outside the single binary. */
  private runningBinary(): string[] {
    if (!this.d.host.isSingleBinary()) return [];
    try {
      return [realpathSync(this.d.host.launchPath())];
    } catch {
      return [];
    }
  }

  /** Records and reports a refusal unless startUpgrade already recorded this upgrade's outcome. */
  private refuse(u: AgentUpgrade, err: FerryError): void {
    let began = false;
    const d = updateUpgradeState(this.d.state.dir, (cur) => {
      if (cur.last?.upgradeId === u.upgradeId && cur.last.outcome !== 'in-progress') return cur;
      if (cur.pending?.id === u.upgradeId) {
        began = true;
        return cur;
      }
      const last: LastUpgrade = { upgradeId: u.upgradeId, from: FERRY_VERSION, to: u.version, outcome: 'refused', reason: `${err.message}${err.hint ? `; ${err.hint}` : ''}`, logTail: [], errorCode: err.code, atMs: Date.now() };
      return { ...cur, last };
    });
    if (began) {
      // Failed after the install began: the pending state is the watcher's and trial.ts's to resolve; they report it.
      this.d.log.error({ upgrade: u.upgradeId, err: err.message }, 'upgrade failed after it began');
      return;
    }
    this.d.log.warn({ upgrade: u.upgradeId, code: err.code, err: err.message }, 'upgrade refused; this version keeps running');
    this.d.report(toReport(d.last!));
  }
}
