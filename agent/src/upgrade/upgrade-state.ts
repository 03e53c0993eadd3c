/**
 * What a host knows about its agent's self-upgrades, in one file written
 * atomically (common/src/secure-fs.ts): the version kept to roll back to, the
 * upgrade in flight, versions that failed here (never retried unless an
 * operator asks), and the last outcome, which every hello resends until the
 * next upgrade replaces it.
 *
 * Layout under the state directory:
 *   upgrade/state.json              this file
 *   versions/<version>/ferry-agent  installed binaries
 *   versions/<version>/.complete    written last: the binary beside it is whole (its sha256)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AgentUpgradeReport } from '../../../common/src/gen/ferry/v1/session.js';
import { upgradeOutcomeCode, type UpgradeOutcome } from '../../../common/src/upgrade-outcome.js';
import { DirLock } from '../../../common/src/dir-lock.js';
import { writeFileAtomic } from '../../../common/src/secure-fs.js';

/** The upgrade in flight. */
export interface PendingUpgrade {
  id: string;
  from: string;
  to: string;
  /** The path systemd runs (ExecStart's program): a symlink into versions/ once switched. */
  link: string;
  fromBinary: string;
  toBinary: string;
  /** The agent's systemd unit, e.g. ferry-agent.service. */
  unit: string;
  /** The transient unit that watches the new version (systemd-run). */
  watcherUnit: string;
  /** installed: the new binary is in place, the link still runs the old one; switched: the link runs the new one. */
  phase: 'installed' | 'switched';
  windowMs: number;
  switchedAtMs?: number;
  /** Until when the new version may take to connect and pass its self-check. */
  deadlineMs?: number;
  /** Set by the new agent when its self-check failed (the watcher rolls back). */
  selfCheckError?: string;
}

/** A version that was rolled back on this host. */
export interface FailedVersion {
  upgradeId: string;
  atMs: number;
  reason: string;
}

/** An outcome as kept on disk (the report without protobuf enums). */
export interface LastUpgrade {
  upgradeId: string;
  from: string;
  to: string;
  outcome: UpgradeOutcome;
  reason: string;
  logTail: string[];
  errorCode: string;
  atMs: number;
}

export interface UpgradeStateData {
  /** The version kept to roll back to ('' = none yet). */
  previous: string;
  pending?: PendingUpgrade;
  failed: Record<string, FailedVersion>;
  last?: LastUpgrade;
}

/** The report a hello or upgrade message carries. */
export function toReport(l: LastUpgrade): AgentUpgradeReport {
  return { upgradeId: l.upgradeId, fromVersion: l.from, toVersion: l.to, outcome: upgradeOutcomeCode(l.outcome), reason: l.reason, logTail: l.logTail, timeMs: l.atMs, errorCode: l.errorCode };
}

/** Paths of the upgrade area in a state directory. */
export class UpgradePaths {
  constructor(readonly stateDir: string) {}
  get file(): string { return join(this.stateDir, 'upgrade', 'state.json'); }
  versionDir(v: string): string { return join(this.stateDir, 'versions', v); }
  binary(v: string): string { return join(this.versionDir(v), 'ferry-agent'); }
  marker(v: string): string { return join(this.versionDir(v), '.complete'); }
}

/** Reads the state; an absent file is an empty state, an unreadable one an error that says where. */
export function loadUpgradeState(stateDir: string): UpgradeStateData {
  const file = new UpgradePaths(stateDir).file;
  if (!existsSync(file)) return { previous: '', failed: {} };
  try {
    const d = JSON.parse(readFileSync(file, 'utf8')) as Partial<UpgradeStateData>;
    return { previous: d.previous ?? '', failed: d.failed ?? {}, ...(d.pending ? { pending: d.pending } : {}), ...(d.last ? { last: d.last } : {}) };
  } catch (err) {
    throw new FerryError(ErrorCode.Internal, `cannot read ${file}: ${(err as Error).message}`,
      'the file is written atomically, so this is damage from outside; move it away to forget the upgrade history (versions/ keeps the binaries)');
  }
}

/** Writes the state atomically (0600); only under the lock (updateUpgradeState). */
function saveUpgradeState(stateDir: string, d: UpgradeStateData): void {
  writeFileAtomic(new UpgradePaths(stateDir).file, `${JSON.stringify(d, null, 2)}\n`, { mode: 0o600, dirMode: 0o700 });
}

/** How long a writer waits for another process's read-change-write of the state (each takes milliseconds). */
const LOCK_WAIT_MS = 10_000;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Reads, changes and writes the state; returns what was written. The one
 * way the state is written: the agent, `ferry-agent upgrade`, the watcher
 * and the guard are separate processes, and each write is a change of what
 * was just read, so it runs under a lock (common/src/dir-lock.ts, on
 * upgrade/lock/): a commit written by the new agent cannot be overwritten by
 * a watcher that read the state a moment before. `fn` gets the state as it
 * is now and decides on that, not on an earlier read. Synchronous, so no
 * other work of this process interleaves.
 */
export function updateUpgradeState(stateDir: string, fn: (d: UpgradeStateData) => UpgradeStateData): UpgradeStateData {
  const dir = join(stateDir, 'upgrade', 'lock');
  const until = Date.now() + LOCK_WAIT_MS;
  let lock: DirLock;
  for (;;) {
    try {
      lock = DirLock.acquire(dir, { owner: 'ferry-agent upgrade state', what: 'the upgrade state lock', hint: 'another ferry-agent process is writing the upgrade state; try again' });
      break;
    } catch (err) {
      if (!(err instanceof FerryError) || err.code !== ErrorCode.Config || Date.now() >= until) throw err;
      Atomics.wait(pause, 0, 0, 5);
    }
  }
  try {
    const next = fn(loadUpgradeState(stateDir));
    saveUpgradeState(stateDir, next);
    return next;
  } finally {
    lock.release();
  }
}
