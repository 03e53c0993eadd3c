/**
 * The guard: while an upgrade is in flight, a systemd drop-in makes every
 * start of the agent's unit first run the OLD binary's `upgrade-guard`
 * (ExecStartPre), which starts a watcher when none runs. So a new version
 * that crashes before it can do anything itself, after a reboot or after
 * the watcher died, is still watched and rolled back: nothing the new
 * binary does (or fails to do) decides whether the host gets back.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../../common/src/log.js';
import { writeFileAtomic } from '../../../common/src/secure-fs.js';
import { quoteExecArg } from '../../../common/src/service/systemd-service.js';
import type { UpgradeHost } from './upgrade-host.js';
import { loadUpgradeState, type PendingUpgrade } from './upgrade-state.js';

const DROP_IN = 'ferry-upgrade-guard.conf';

/** Where the drop-in for `unit` goes (beside systemd's own admin units). */
export function guardPath(unit: string, unitDir: string): string {
  return join(unitDir, `${unit}.d`, DROP_IN);
}

/** Installs the drop-in (runs `fromBinary upgrade-guard` before each start) and reloads systemd. */
export async function installGuard(host: UpgradeHost, p: Pick<PendingUpgrade, 'unit' | 'fromBinary'>, stateDir: string): Promise<void> {
  // "-": a guard that fails must never keep the agent from starting.
  writeFileAtomic(guardPath(p.unit, host.unitDir), `# Written by a ferry-agent self-upgrade; removed when it commits or rolls back.\n[Service]\nExecStartPre=-${[p.fromBinary, 'upgrade-guard', '--state', stateDir].map(quoteExecArg).join(' ')}\n`,
    { mode: 0o644, dirMode: 0o755 });
  await host.systemctl(['daemon-reload']);
}

/** Removes the drop-in (when there) and reloads systemd. */
export async function removeGuard(host: UpgradeHost, unit: string): Promise<void> {
  const path = guardPath(unit, host.unitDir);
  if (!existsSync(path)) return;
  rmSync(path, { force: true });
  await host.systemctl(['daemon-reload']);
}

/** Is the watcher of `p` (or an adopted one) running? */
export async function watcherRunning(host: UpgradeHost, p: PendingUpgrade): Promise<boolean> {
  for (const unit of [p.watcherUnit, adoptUnit(p)]) {
    const st = await host.unitState(unit);
    if (['active', 'activating', 'reloading'].includes(st.activeState)) return true;
  }
  return false;
}

/** The unit name of a watcher started after the fact (guard or trial): one per upgrade, so two cannot run. */
export function adoptUnit(p: PendingUpgrade): string {
  return p.watcherUnit.replace(/\.service$/, '-adopt.service');
}

/** Starts an adopting watcher for `p` unless one runs; returns false when systemd-run failed. */
export async function ensureWatcher(host: UpgradeHost, p: PendingUpgrade, stateDir: string, log: Logger): Promise<boolean> {
  if (await watcherRunning(host, p)) return true;
  log.warn({ upgrade: p.id, to: p.to }, 'upgrade in flight without a watcher; starting one');
  // A failed adopt watcher of an earlier boot would block the name.
  await host.systemctl(['reset-failed', adoptUnit(p)]);
  const r = await host.systemdRun(adoptUnit(p), [p.fromBinary, 'upgrade-watch', '--state', stateDir, '--adopt'], { noBlock: true });
  if (r.exitCode !== 0) log.error({ output: r.output }, 'could not start the upgrade watcher');
  return r.exitCode === 0;
}

/** `ferry-agent upgrade-guard`: before each start of the agent while an upgrade is in flight. Never fails. */
export async function runGuard(stateDir: string, host: UpgradeHost, log: Logger): Promise<void> {
  try {
    const p = loadUpgradeState(stateDir).pending;
    if (!p) {
      log.info('no upgrade in flight');
      return;
    }
    await ensureWatcher(host, p, stateDir, log);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'upgrade guard failed; starting the agent anyway');
  }
}
