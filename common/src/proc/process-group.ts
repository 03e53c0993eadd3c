/**
 * Process groups the agent starts, as the kernel sees them in /proc: who is
 * still in a group, and ending a group (SIGTERM, a grace period, SIGKILL)
 * until nothing of it is left. A group is identified by its id plus the
 * leader's start time and the boot it started in, so a record that outlived
 * the agent (kill -9, OOM) can never hit an unrelated process that later got
 * the same pid.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, FerryError } from '../errors.js';

/** After SIGTERM, how long a process group gets before SIGKILL (one value for every caller). */
export const KILL_GRACE_MS = 5_000;
/** After SIGKILL, how long we wait for the kernel to take the group away before giving up. */
const KILL_WAIT_MS = 10_000;
const POLL_MS = 25;

/** A process group the agent started: enough to find it again, and to know it is still ours. */
export interface GroupRecord {
  /** The group id (= the leader's pid: every command runs in a group of its own). */
  pgid: number;
  /** The leader's start time, /proc/<pid>/stat field 22 (clock ticks since boot). */
  start: number;
  /** /proc/sys/kernel/random/boot_id when it started: after a reboot the group is gone for sure. */
  boot: string;
}

/** Fields of /proc/<pid>/stat the agent uses. */
interface Stat { state: string; pgrp: number; start: number }

function readStat(pid: number | string): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
  return { state: f[0]!, pgrp: Number(f[2]), start: Number(f[19]) };
}

let bootIdCache: string | undefined;

/** This boot's id. */
export function bootId(): string {
  bootIdCache ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootIdCache;
}

/** The record for the group led by `pid` (just spawned with its own group); undefined if it is already gone. */
export function groupRecord(pid: number): GroupRecord | undefined {
  const s = readStat(pid);
  return s ? { pgid: pid, start: s.start, boot: bootId() } : undefined;
}

/** Sends `sig` to every process of group `pgid`; false when there is none. */
export function signalGroup(pgid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false; // the group is gone already
  }
}

/**
 * Live (not zombie) members of the recorded group. A record is only ours while
 * the leader, if it still exists, has the recorded start time; members of a
 * group whose leader has exited must have started after it.
 */
export function liveMembers(rec: GroupRecord): number[] | 'reused' {
  if (rec.boot !== bootId()) return [];
  const leader = readStat(rec.pgid);
  if (leader && leader.start !== rec.start) return 'reused';
  // Cheap first: no process at all in the group.
  try { process.kill(-rec.pgid, 0); } catch { return []; }
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(name);
    // Zombies hold no resources and cannot be killed; their reaper takes them.
    if (s && s.pgrp === rec.pgid && s.state !== 'Z' && s.start >= rec.start) out.push(Number(name));
  }
  return out;
}

/** What ending a group found. */
export type EndResult = 'gone' | 'ended' | 'reused';

/** Options for {@link endGroup} (tests shorten the grace period). */
export interface EndOptions { graceMs?: number }

/**
 * Ends a recorded group: SIGTERM to all of it, SIGKILL after the grace
 * period, and resolves once no live process of it is left. Returns 'reused'
 * (and signals nothing) when the pid now belongs to another process.
 * Throws FerryError when the group cannot be signalled or will not die.
 */
export async function endGroup(rec: GroupRecord, o: EndOptions = {}): Promise<EndResult> {
  let members = liveMembers(rec);
  if (members === 'reused') return 'reused';
  if (members.length === 0) return 'gone';
  const graceUntil = Date.now() + (o.graceMs ?? KILL_GRACE_MS);
  let killUntil: number | undefined;
  kill(rec.pgid, 'SIGTERM');
  for (;;) {
    await sleep(POLL_MS);
    members = liveMembers(rec);
    if (members === 'reused' || members.length === 0) return 'ended';
    const now = Date.now();
    if (killUntil === undefined && now >= graceUntil) {
      kill(rec.pgid, 'SIGKILL');
      killUntil = now + KILL_WAIT_MS;
    } else if (killUntil !== undefined && now >= killUntil) {
      throw new FerryError(ErrorCode.Internal, `process group ${rec.pgid} is still alive ${KILL_WAIT_MS} ms after SIGKILL (pids ${members.join(', ')})`,
        'a process stuck in the kernel (state D) cannot be killed; check `ps -o pid,stat,wchan -g ' + rec.pgid + '` on the host');
    }
  }
}

function kill(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return;
    throw new FerryError(ErrorCode.PermissionDenied, `cannot send ${sig} to process group ${pgid}: ${(err as Error).message}`,
      'the group belongs to another user; run the agent as the user that started it (normally root)');
  }
}
