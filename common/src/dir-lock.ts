import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, FerryError } from './errors.js';

/**
 * One process per directory: the controller's data directory and the agent's
 * state directory each belong to one process at a time.
 *
 * Why this mechanism. Node has no flock(2)/fcntl(2), and a native addon would
 * not survive the single-binary agent. An abstract Unix socket would be
 * released by the kernel, but it is scoped to a network namespace, not to the
 * directory. So, like PostgreSQL's postmaster.pid, the lock is a file holding
 * its owner's pid, the owner's start time (field 22 of /proc/<pid>/stat, so a
 * reused pid is not mistaken for the owner) and the boot id (a pid from
 * before a reboot is never alive). A holder killed with -9 leaves its file
 * behind; the next start sees that the owner is gone and takes over.
 *
 * Taking over a stale file must not race: with one fixed name, two starters
 * that both judged it stale could each delete it and one would delete the
 * other's fresh lock. So lock files are numbered generations
 * `ferry.lock.<n>`, and the lock belongs to the highest one. A starter that
 * finds generation n stale (or released) claims n+1 with link(2), which fails
 * if the name exists, so two starters can never both claim n+1. Files are
 * deleted only below a higher one, so the highest number only ever grows;
 * after claiming, a starter checks that its generation is still the highest
 * and backs off otherwise (it acted on an old view of the directory). Release
 * writes a "released" generation above the holder's own instead of deleting
 * it, so numbers are never reused. Each file is written whole under a
 * temporary name first and linked into place, so no reader sees it half
 * written; every file is 0600.
 *
 * Limits, as for postmaster.pid: the processes must share a PID namespace (a
 * container and its host looking at one directory would not see each other),
 * and a holder whose /proc entry is hidden is taken to be alive.
 */

const PREFIX = 'ferry.lock.';
const GEN = /^ferry\.lock\.(\d+)$/;
const TMP = /^ferry\.lock\.tmp-(\d+)-[0-9a-f]+$/;
/** Rounds of list–judge–claim before giving up under heavy contention. */
const ATTEMPTS = 100;

/** Who holds (or held) a directory: what `ferry-agent status` and error messages show. */
export interface LockHolder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot); '' where /proc is missing. */
  startTime: string;
  /** /proc/sys/kernel/random/boot_id; '' where it is missing. */
  bootId: string;
  /** What holds it, for people: "ferry controller", "ferry-agent run". */
  owner: string;
  host: string;
  sinceMs: number;
}

interface LockRecord extends LockHolder {
  released?: boolean;
}

export interface AcquireOptions {
  /** What is taking the lock, shown to whoever finds it held: "ferry controller". */
  owner: string;
  /** What the directory is, for messages: "data directory". */
  what: string;
  /** What the person who hits a held lock should do next. */
  hint: string;
  /** Test seam: hold the lock in the name of another process (pid, start time, boot id). */
  as?: Pick<LockHolder, 'pid' | 'startTime' | 'bootId'>;
  /** Test seam: runs after judging the current generation, before claiming `gen`. */
  beforeClaim?: (gen: number) => void;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Start time of `pid` (field 22 of /proc/<pid>/stat), or undefined when there is no such entry. */
export function processStartTime(pid: number): string | undefined {
  const stat = readOr(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // Field 2 is the command name in parentheses and may itself hold spaces or ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19]; // fields[0] is field 3
}

/** This process as a lock holder would record it. */
export function processIdentity(pid = process.pid): Pick<LockHolder, 'pid' | 'startTime' | 'bootId'> {
  return { pid, startTime: processStartTime(pid) ?? '', bootId: readOr('/proc/sys/kernel/random/boot_id') };
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True while the process that wrote `r` is still running. */
function isLive(r: LockRecord): boolean {
  if (r.released || !Number.isInteger(r.pid) || r.pid <= 0) return false;
  const bootId = readOr('/proc/sys/kernel/random/boot_id');
  if (r.bootId && bootId && r.bootId !== bootId) return false; // written before a reboot
  const start = processStartTime(r.pid);
  if (start !== undefined && r.startTime) return start === r.startTime; // differs: the pid was reused
  return pidExists(r.pid);
}

/** Generations present in `dir`, highest first, and leftover temporary files. */
function scan(dir: string): { gens: number[]; tmps: Array<{ name: string; pid: number }> } {
  const gens: number[] = [];
  const tmps: Array<{ name: string; pid: number }> = [];
  for (const name of readdirSync(dir)) {
    const g = GEN.exec(name);
    if (g) gens.push(Number(g[1]));
    const t = TMP.exec(name);
    if (t) tmps.push({ name, pid: Number(t[1]) });
  }
  return { gens: gens.sort((a, b) => b - a), tmps };
}

/** The record of generation `gen`: undefined if it is gone, null if it is not a record (taken as stale). */
function readRecord(dir: string, gen: number): LockRecord | undefined | null {
  let text: string;
  try {
    text = readFileSync(join(dir, PREFIX + gen), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const r = JSON.parse(text) as LockRecord;
    return r && typeof r === 'object' && typeof r.pid === 'number' ? r : null;
  } catch {
    return null; // written whole before linking, so only damage gets here
  }
}

/** Writes `record` as generation `gen`; false when that generation already exists. */
function claim(dir: string, gen: number, record: LockRecord): boolean {
  const tmp = join(dir, `${PREFIX}tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      fchmodSync(fd, 0o600); // whatever the umask
      writeSync(fd, JSON.stringify(record) + '\n');
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, join(dir, PREFIX + gen));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    removeQuietly(tmp); // a full disk must not leave a half-written one behind
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** An exclusive lock on a directory, held until release() or the process ends. */
export class DirLock {
  private released = false;

  private constructor(readonly dir: string, readonly gen: number, readonly holder: LockHolder) {}

  /** The lock file of this holder (its name carries the generation). */
  get path(): string {
    return join(this.dir, PREFIX + this.gen);
  }

  /**
   * Takes the lock on `dir` (created 0700 if missing) or throws a CONFIG
   * FerryError naming the directory and the process that holds it.
   */
  static acquire(dir: string, opts: AcquireOptions): DirLock {
    try {
      return DirLock.tryAcquire(dir, opts);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
        throw new FerryError(ErrorCode.Config, `cannot take the lock on ${opts.what} ${dir}: ${(err as Error).message}`,
          'run as the user that owns that directory (root for /var/lib/...), or choose a directory you can write', { cause: err });
      }
      throw err;
    }
  }

  private static tryAcquire(dir: string, opts: AcquireOptions): DirLock {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const me: LockRecord = { ...(opts.as ?? processIdentity()), owner: opts.owner, host: hostname(), sinceMs: Date.now() };
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const top = scan(dir).gens[0];
      let next = 1;
      if (top !== undefined) {
        const r = readRecord(dir, top);
        if (r === undefined) continue; // replaced while we looked: look again
        if (r && isLive(r)) {
          throw new FerryError(ErrorCode.Config,
            `${opts.what} ${dir} is in use by ${r.owner || 'another process'} (pid ${r.pid}${r.sinceMs ? `, since ${new Date(r.sinceMs).toISOString()}` : ''})`,
            opts.hint);
        }
        next = top + 1;
      }
      opts.beforeClaim?.(next);
      if (!claim(dir, next, me)) continue; // someone claimed it first: judge theirs
      const after = scan(dir);
      if (after.gens[0] !== next) {
        // A higher generation appeared: we acted on an old view. Back off and judge it.
        removeQuietly(join(dir, PREFIX + next));
        continue;
      }
      for (const g of after.gens) if (g < next) removeQuietly(join(dir, PREFIX + g));
      for (const t of after.tmps) if (t.pid !== process.pid && !pidExists(t.pid)) removeQuietly(join(dir, t.name));
      return new DirLock(dir, next, me);
    }
    throw new FerryError(ErrorCode.Config, `could not take the lock on ${opts.what} ${dir}: too many processes are starting on it at once`,
      'start one process per directory');
  }

  /** The live holder of `dir`'s lock, or undefined when nobody holds it. */
  static holder(dir: string): LockHolder | undefined {
    let top: number | undefined;
    try {
      top = scan(dir).gens[0];
    } catch {
      return undefined; // no directory, no holder
    }
    if (top === undefined) return undefined;
    const r = readRecord(dir, top);
    return r && isLive(r) ? r : undefined;
  }

  /** Gives the lock up; safe to call twice. */
  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      // A "released" generation above ours keeps numbers increasing (see the top of this file).
      claim(this.dir, this.gen + 1, { ...this.holder, released: true });
    } catch {
      // the directory is gone or unwritable: the next start judges our pid instead
    }
    removeQuietly(this.path);
  }
}
