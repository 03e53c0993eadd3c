/**
 * The first half of a self-upgrade, run while the old agent keeps working:
 * check the new binary, check the disk, install it into versions/<v>/ with a
 * completion marker, keep the running version beside it, switch the path
 * systemd runs with one atomic rename, and hand over to a watcher started
 * through systemd-run, outside the agent's cgroup, which restarts the
 * service and commits or rolls back (watcher.ts). Each step is written to
 * upgrade/state.json before the next, so a crash or reboot anywhere leaves a
 * state the next start resolves (trial.ts).
 */
import { existsSync, lstatSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { platformArch } from '../../../common/src/arch.js';
import { formatDuration } from '../../../common/src/duration.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { fsyncDir, writeFileAtomic, writeFileAtomicAsync } from '../../../common/src/secure-fs.js';
import { FERRY_VERSION, versionProblem } from '../../../common/src/version.js';
import { ensureFreeSpace, realStatfs, type StatfsFn } from '../bundles/disk-space.js';
import { sha256File } from '../steps/util/file-ops.js';
import { installGuard, removeGuard } from './guard.js';
import type { UpgradeHost } from './upgrade-host.js';
import { loadUpgradeState, updateUpgradeState, UpgradePaths, type LastUpgrade, type PendingUpgrade } from './upgrade-state.js';

/** How long a new version has to reconnect and pass its self-check, unless told otherwise. */
export const DEFAULT_CONNECT_WINDOW_MS = 2 * 60_000;

export interface StartUpgradeOptions {
  stateDir: string;
  upgradeId: string;
  /** The new binary (a staged release file, or one an operator copied to the host). */
  source: string;
  /** The version the release says it is; the binary must report the same. */
  expectVersion?: string;
  /** The agent's systemd service (ferry-agent.service). */
  unit: string;
  windowMs?: number;
  /** The operator asked to try a version that was rolled back here before. */
  retryFailed?: boolean;
  host: UpgradeHost;
  now?: () => number;
  statfs?: StatfsFn;
  /** Called once the path runs the new version, before the restart (the controller hears of the switch). */
  onSwitched?: (last: LastUpgrade) => void;
  /** Test hook: after this phase is written, stop (write upgrade/held-<phase>) and wait to be killed. */
  holdAt?: 'installed' | 'switched';
}

/** What started: the watcher now owns the upgrade. */
export interface StartedUpgrade {
  from: string;
  to: string;
  watcherUnit: string;
  deadlineMs: number;
}

const refused = (message: string, hint: string) => new FerryError(ErrorCode.UpgradeRefused, message, hint);

/** Replaces `link` with a symlink to `target` in one rename (a reader sees the old or the new, never none). */
export async function pointLink(link: string, target: string): Promise<void> {
  const tmp = join(dirname(link), `.${basename(link)}.ferry-upgrade.tmp`);
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, link);
  await fsyncDir(dirname(link));
}

/** Where `link` points now (resolved to an absolute path), or undefined when it is a plain file. */
export function linkTarget(link: string): string | undefined {
  if (!lstatSync(link).isSymbolicLink()) return undefined;
  return resolve(dirname(link), readlinkSync(link));
}

/** The program path of the unit's ExecStart (what systemd runs, and what the upgrade switches). */
async function execStartPath(host: UpgradeHost, unit: string): Promise<string> {
  const r = await host.systemctl(['show', unit, '--property=ExecStart', '--value']);
  const m = /\bpath=(\S+)/.exec(r.output);
  if (r.exitCode !== 0 || !m) {
    throw refused(`cannot tell which program systemd runs for ${unit}: ${r.output || `systemctl exited ${r.exitCode}`}`,
      'self-upgrade needs the agent installed as a service (`ferry-agent install-service`)');
  }
  return m[1]!;
}

/** Installs `source` as versions/<v>/ferry-agent unless a complete copy with the same sha256 is there already. */
async function install(paths: UpgradePaths, v: string, source: string, sha: string): Promise<void> {
  const marker = paths.marker(v);
  if (existsSync(marker) && existsSync(paths.binary(v)) && readFileSync(marker, 'utf8').trim() === sha) return;
  rmSync(marker, { force: true });
  await writeFileAtomicAsync(paths.binary(v), { copyFrom: source }, { mode: 0o755, dirMode: 0o700 });
  const copied = await sha256File(paths.binary(v));
  if (copied !== sha) {
    throw refused(`the copy of ${source} in ${paths.versionDir(v)} does not match it (sha256 ${copied}, expected ${sha})`, 'check the disk holding the state directory, then try again');
  }
  // Written last: a version directory without it is an interrupted install, copied again next time.
  writeFileAtomic(marker, `${sha}\n`, { mode: 0o600, dirMode: 0o700 });
}

/** Records a refusal as the last outcome (so the controller hears of it) and returns the error to throw. */
function refuse(o: StartUpgradeOptions, to: string, err: FerryError): FerryError {
  const last: LastUpgrade = { upgradeId: o.upgradeId, from: FERRY_VERSION, to, outcome: 'refused', reason: `${err.message}${err.hint ? `; ${err.hint}` : ''}`, logTail: [], errorCode: err.code, atMs: (o.now ?? Date.now)() };
  updateUpgradeState(o.stateDir, (d) => ({ ...d, last }));
  return err;
}

function hold(o: StartUpgradeOptions, phase: 'installed' | 'switched'): Promise<never> | undefined {
  if (o.holdAt !== phase) return undefined;
  writeFileSync(join(o.stateDir, 'upgrade', `held-${phase}`), `${process.pid}\n`);
  return new Promise<never>(() => { setInterval(() => undefined, 60_000); });
}

/**
 * Runs the first half of an upgrade (see the module comment) and starts the
 * watcher. Refusals (failed here before, wrong architecture, no space, not a
 * service) throw UPGRADE_REFUSED and leave the running version untouched.
 */
export async function startUpgrade(o: StartUpgradeOptions): Promise<StartedUpgrade> {
  const now = o.now ?? Date.now;
  const paths = new UpgradePaths(o.stateDir);
  const windowMs = o.windowMs || DEFAULT_CONNECT_WINDOW_MS;
  const state = loadUpgradeState(o.stateDir);
  if (state.pending) {
    throw refused(`an upgrade to ${state.pending.to} (${state.pending.id}) is already in progress on this host`, 'wait for it to commit or roll back (`ferry-agent version` shows it)');
  }
  // What the new binary says it is: a binary that cannot even answer this never replaces the running one.
  const described = await o.host.describeBinary(o.source);
  let info: { version?: string; arch?: string } = {};
  try { info = JSON.parse(described.stdout) as typeof info; } catch { /* checked below */ }
  const to = info.version ?? o.expectVersion ?? '?';
  if (described.exitCode !== 0 || typeof info.version !== 'string') {
    throw refuse(o, to, refused(`${o.source} does not run on this host (\`version --json\` exited ${described.exitCode}): ${(described.stderr || described.stdout).trim().slice(0, 300)}`,
      'check that the release was built for this architecture and copied whole'));
  }
  if (versionProblem(info.version)) throw refuse(o, to, refused(`${o.source} reports version ${JSON.stringify(info.version)}: ${versionProblem(info.version)}`, 'rebuild the release'));
  if (o.expectVersion && info.version !== o.expectVersion) {
    throw refuse(o, to, refused(`${o.source} reports version ${info.version}, but the release is ${o.expectVersion}`, 'rebuild or re-sign the release with the right version'));
  }
  const arch = platformArch();
  if (info.arch !== arch) throw refuse(o, to, refused(`${o.source} is built for ${info.arch ?? 'an unknown architecture'}, this host is ${arch}`, `use the ferry-agent-linux-${arch} release`));
  if (to === FERRY_VERSION) throw refuse(o, to, refused(`this host already runs ferry-agent ${to}`, 'nothing to do'));
  const failed = state.failed[to];
  if (failed && !o.retryFailed) {
    throw refuse(o, to, refused(`ferry-agent ${to} was rolled back on this host at ${new Date(failed.atMs).toISOString()} (${failed.reason}); it is not tried again by itself`,
      'fix the release, or ask for it explicitly: ferry agents upgrade --retry-failed (ferry-agent upgrade --retry-failed on the host)'));
  }
  if (!o.host.isSingleBinary()) {
    throw refuse(o, to, refused('this agent runs from node and a script (a development install); self-upgrade replaces the single binary', 'install the single binary (dist/ferry-agent-linux-ARCH) as the service, or upgrade this one by hand'));
  }
  const link = await execStartPath(o.host, o.unit);

  // Disk: the new binary, plus a copy of the running one on the first upgrade.
  const size = statSync(o.source).size;
  const keepCurrent = linkTarget(link) === undefined ? statSync(link).size : 0;
  try {
    await ensureFreeSpace(o.stateDir, size + keepCurrent + (16 << 20), 'the new agent binary and a copy of the running one', o.statfs ?? realStatfs);
  } catch (err) {
    throw refuse(o, to, err as FerryError);
  }
  const sha = await sha256File(o.source);
  await install(paths, to, o.source, sha);
  // The running version is kept beside it, so a rollback has something to go back to.
  const from = FERRY_VERSION;
  if (linkTarget(link) !== paths.binary(from) || !existsSync(paths.marker(from))) {
    await install(paths, from, linkTarget(link) ?? link, await sha256File(linkTarget(link) ?? link));
  }

  const pending: PendingUpgrade = {
    id: o.upgradeId, from, to, link, fromBinary: paths.binary(from), toBinary: paths.binary(to), unit: o.unit,
    watcherUnit: `ferry-agent-upgrade-${o.upgradeId.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40)}.service`, phase: 'installed', windowMs,
  };
  const inProgress: LastUpgrade = { upgradeId: o.upgradeId, from, to, outcome: 'in-progress', reason: 'installed; switching', logTail: [], errorCode: '', atMs: now() };
  updateUpgradeState(o.stateDir, (d) => {
    // Another upgrade (the CLI and the controller at once) began while this one installed: the first one wins.
    if (d.pending) throw refused(`an upgrade to ${d.pending.to} (${d.pending.id}) began on this host meanwhile`, 'wait for it to commit or roll back (`ferry-agent version` shows it)');
    return { ...d, pending, last: inProgress };
  });
  await hold(o, 'installed');
  // From here every start of the unit makes sure a watcher runs (guard.ts), whatever happens to this process.
  await installGuard(o.host, pending, o.stateDir);

  await pointLink(link, pending.toBinary);
  const switchedAtMs = now();
  const switched: PendingUpgrade = { ...pending, phase: 'switched', switchedAtMs, deadlineMs: switchedAtMs + windowMs };
  const restarting: LastUpgrade = { ...inProgress, reason: `switched to ${to}; restarting through systemd; it must reconnect within ${formatDuration(windowMs)} or ${from} is restored`, atMs: switchedAtMs };
  updateUpgradeState(o.stateDir, (d) => ({ ...d, pending: switched, last: restarting }));
  // Told before the restart, which may end this process before anything after systemd-run runs.
  o.onSwitched?.(restarting);
  await hold(o, 'switched');

  // The watcher runs the old, known-good binary from versions/, in a unit of its own: restarting the agent cannot kill it.
  const r = await o.host.systemdRun(switched.watcherUnit, [switched.fromBinary, 'upgrade-watch', '--state', o.stateDir]);
  if (r.exitCode !== 0) {
    await pointLink(link, switched.fromBinary);
    await removeGuard(o.host, o.unit);
    updateUpgradeState(o.stateDir, (d) => {
      if (d.pending?.id === switched.id) delete d.pending;
      return d;
    });
    throw refuse(o, to, refused(`could not start the upgrade watcher with systemd-run: ${r.output}`, 'the running version was kept; check that systemd runs this host'));
  }
  return { from, to, watcherUnit: switched.watcherUnit, deadlineMs: switched.deadlineMs! };
}
