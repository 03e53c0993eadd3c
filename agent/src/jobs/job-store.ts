import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentMessage, JobStart } from '../../../common/src/gen/ferry/v1/session.js';
import { writeFileAtomic } from '../../../common/src/secure-fs.js';
import type { GroupRecord } from '../../../common/src/proc/process-group.js';

/**
 * A line of a job's journal: what happened to each step, fsynced before it
 * counts. `proc` is a process group a step started (written before its output
 * is awaited), `procEnd` says it is over; a `proc` without its `procEnd` is a
 * group a killed agent may have left running.
 */
export type JournalEntry =
  | { t: 'start'; i: number; attempt: number; at: number }
  | { t: 'done'; i: number; status: string; at: number }
  | { t: 'result'; status: string; at: number }
  | ({ t: 'proc'; i: number; at: number } & GroupRecord)
  | { t: 'procEnd'; i: number; pgid: number; start: number; at: number };

const SAFE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Plan jobs on disk, one directory each under STATE/jobs/<id>/:
 *  - job.json: the JobStart as received (written before anything runs);
 *  - journal.jsonl: step starts and ends, fsynced line by line, so after a
 *    kill or reboot the agent knows which step was interrupted;
 *  - messages.jsonl: every message for the controller (output, step events,
 *    result) until acknowledged, so nothing is lost across reconnects or
 *    restarts; acked holds the highest acknowledged sequence number.
 * A finished and fully acknowledged job leaves only a marker in done/, so a
 * start resent by the controller is never run twice; exec jobs leave the
 * same marker before they run (`remember`).
 */
export class JobStore {
  private readonly root: string;
  private readonly fds = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private flushTimer?: NodeJS.Timeout;

  constructor(stateDir: string) {
    this.root = join(stateDir, 'jobs');
    mkdirSync(join(this.root, 'done'), { recursive: true, mode: 0o700 });
  }

  private dir(id: string): string {
    if (!SAFE_ID.test(id)) throw new Error(`unsafe job id ${JSON.stringify(id)}`);
    return join(this.root, id);
  }

  /** True when the job was seen before (running, unfinished or done). */
  known(id: string): boolean {
    return existsSync(this.dir(id)) || existsSync(join(this.root, 'done', id));
  }

  /**
   * Journals a job id this agent takes on without a directory (exec jobs:
   * their output lives only in memory), durably before it runs, so a start
   * resent after this agent restarted is recognised by `known` and refused.
   */
  remember(id: string): void {
    const p = join(this.root, 'done', id);
    if (!SAFE_ID.test(id)) throw new Error(`unsafe job id ${JSON.stringify(id)}`);
    const fd = openSync(p, 'w', 0o600);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // The new name must survive a power loss too, not only the (empty) file.
    const dirFd = openSync(join(this.root, 'done'), 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  create(job: JobStart): void {
    const d = this.dir(job.jobId);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    writeFileAtomic(join(d, 'job.json'), JSON.stringify(job), 0o600);
  }

  /** Jobs with a directory: unfinished, or finished with messages the controller has not acknowledged. */
  pending(): JobStart[] {
    return readdirSync(this.root).filter((n) => n !== 'done' && SAFE_ID.test(n) && existsSync(join(this.root, n, 'job.json')))
      .map((n) => JSON.parse(readFileSync(join(this.root, n, 'job.json'), 'utf8')) as JobStart);
  }

  journal(id: string): JournalEntry[] {
    const p = join(this.dir(id), 'journal.jsonl');
    if (!existsSync(p)) return [];
    // A torn last line (power loss mid-write) is ignored: its entry did not count.
    return readFileSync(p, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
      try { return [JSON.parse(l) as JournalEntry]; } catch { return []; }
    });
  }

  /** Process groups recorded as started and not recorded as over, with the step that started them. */
  leftoverGroups(id: string): Array<GroupRecord & { i: number }> {
    const open = new Map<string, GroupRecord & { i: number }>();
    for (const e of this.journal(id)) {
      if (e.t === 'proc') open.set(`${e.pgid}/${e.start}`, { i: e.i, pgid: e.pgid, start: e.start, boot: e.boot });
      if (e.t === 'procEnd') open.delete(`${e.pgid}/${e.start}`);
    }
    return [...open.values()];
  }

  record(id: string, e: JournalEntry): void {
    const fd = openSync(join(this.dir(id), 'journal.jsonl'), 'a', 0o600);
    try {
      appendFileSync(fd, JSON.stringify(e) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Appends a message for the controller; made durable within ~200 ms (and at once with `sync`). */
  appendMessage(id: string, seq: number, msg: AgentMessage, sync = false): void {
    let fd = this.fds.get(id);
    if (fd === undefined) {
      fd = openSync(join(this.dir(id), 'messages.jsonl'), 'a', 0o600);
      this.fds.set(id, fd);
    }
    appendFileSync(fd, JSON.stringify({ seq, msg }, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v)) + '\n');
    if (sync) fsyncSync(fd);
    else {
      this.dirty.add(id);
      this.flushTimer ??= setTimeout(() => this.flush(), 200);
    }
  }

  flush(): void {
    this.flushTimer = undefined;
    for (const id of this.dirty) {
      const fd = this.fds.get(id);
      if (fd !== undefined) fsyncSync(fd);
    }
    this.dirty.clear();
  }

  /** Messages not yet acknowledged, in order, and the last sequence number used. */
  unacked(id: string): { messages: Array<{ seq: number; msg: AgentMessage }>; lastSeq: number } {
    const d = this.dir(id);
    const acked = existsSync(join(d, 'acked')) ? Number(readFileSync(join(d, 'acked'), 'utf8')) || 0 : 0;
    const p = join(d, 'messages.jsonl');
    if (!existsSync(p)) return { messages: [], lastSeq: 0 };
    const all = readFileSync(p, 'utf8').split('\n').filter(Boolean).flatMap((l) => {
      try { return [JSON.parse(l) as { seq: number; msg: AgentMessage }]; } catch { return []; }
    });
    return { messages: all.filter((m) => m.seq > acked), lastSeq: all.reduce((n, m) => Math.max(n, m.seq), 0) };
  }

  /** Records an acknowledgement; not fsynced: losing it only means resending what the controller drops as a duplicate. */
  ack(id: string, seq: number): void {
    if (existsSync(this.dir(id))) writeFileSync(join(this.dir(id), 'acked'), String(seq), { mode: 0o600 });
  }

  /** The controller holds everything of a finished job: keep only the done marker. */
  retire(id: string): void {
    const fd = this.fds.get(id);
    if (fd !== undefined) closeSync(fd);
    this.fds.delete(id);
    this.dirty.delete(id);
    writeFileSync(join(this.root, 'done', id), '', { mode: 0o600 });
    rmSync(this.dir(id), { recursive: true, force: true });
  }

  close(): void {
    this.flush();
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}
