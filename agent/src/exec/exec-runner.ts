import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { OutputStream, type AgentMessage, type ExecSpec } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import type { Outbox } from '../session/outbox.js';

/** Longest line forwarded as is; longer lines are cut with a marker (one message stays far below the size limit). */
const MAX_LINE_BYTES = 16 * 1024;
/** Lines per job kept for the controller; beyond this a single marker says how many were dropped. */
const MAX_LINES_PER_JOB = 100_000;
/** Job ids remembered to ignore resent starts (bounded: the agent runs for months). */
const MAX_REMEMBERED_JOBS = 10_000;
/** After SIGTERM, how long a process group gets before SIGKILL. */
const KILL_GRACE_MS = 5_000;

/** An exec job as the runner takes it: the JobStart's id and its exec spec. */
export type ExecJob = ExecSpec & { jobId: string };

interface Running {
  child: ResultPromise;
  cancelled: boolean;
  timedOut: boolean;
  killTimer?: NodeJS.Timeout;
}

/**
 * Runs commands the controller sends, each in its own process group so a
 * timeout or a cancel reaches every process it started. Output lines and the
 * result go to the outbox with per-job sequence numbers.
 */
export class ExecRunner {
  private readonly running = new Map<string, Running>();
  private readonly seen = new Set<string>();

  constructor(private readonly outbox: Outbox, private readonly log: Logger) {}

  /** Jobs still executing. */
  jobIds(): string[] {
    return [...this.running.keys()];
  }

  start(job: ExecJob): void {
    // A job id runs at most once per agent process, even if the start is resent.
    if (this.seen.has(job.jobId)) return;
    this.seen.add(job.jobId);
    // A resent start arrives within one reconnect; the oldest ids can go.
    if (this.seen.size > MAX_REMEMBERED_JOBS) this.seen.delete(this.seen.values().next().value!);
    let seq = 0;
    let lines = 0;
    let dropped = 0;
    const emit = (m: AgentMessage['msg']) => this.outbox.push(job.jobId, seq, { msg: m });
    const onLine = (stream: OutputStream) => (line: string) => {
      if (lines >= MAX_LINES_PER_JOB) {
        dropped++;
        return;
      }
      lines++;
      if (Buffer.byteLength(line) > MAX_LINE_BYTES) {
        line = `${Buffer.from(line).subarray(0, MAX_LINE_BYTES).toString()}… [ferry: line cut at ${MAX_LINE_BYTES} bytes]`;
      }
      seq++;
      emit({ $case: 'output', value: { jobId: job.jobId, seq, stream, line, timeMs: Date.now() } });
    };
    const started = Date.now();
    const [file, ...args] = job.argv;
    const child = execa(file!, args, {
      reject: false, buffer: false, stdin: 'ignore', detached: true, cleanup: true,
      env: job.env, cwd: job.cwd || undefined, stripFinalNewline: false,
    });
    const entry: Running = { child, cancelled: false, timedOut: false };
    this.running.set(job.jobId, entry);
    const closed = [child.stdout, child.stderr].map((s, i) => readLines(s, onLine(i === 0 ? OutputStream.OUTPUT_STREAM_STDOUT : OutputStream.OUTPUT_STREAM_STDERR)));
    const timer = job.timeoutMs > 0
      ? setTimeout(() => { entry.timedOut = true; this.kill(job.jobId); }, job.timeoutMs)
      : undefined;
    this.log.info({ job: job.jobId, argv: job.argv }, 'exec started');

    void Promise.all([child, ...closed]).then(([r]) => {
      clearTimeout(timer);
      clearTimeout(entry.killTimer);
      this.running.delete(job.jobId);
      if (dropped > 0) {
        seq++;
        emit({ $case: 'output', value: {
          jobId: job.jobId, seq, stream: OutputStream.OUTPUT_STREAM_STDERR, timeMs: Date.now(),
          line: `[ferry: output truncated after ${MAX_LINES_PER_JOB} lines; ${dropped} more lines dropped]`,
        } });
      }
      const notStarted = r.exitCode === undefined && !r.signal;
      const error = notStarted ? startError(file!, r) : entry.timedOut ? `timed out after ${job.timeoutMs} ms` : '';
      seq++;
      emit({ $case: 'jobResult', value: {
        jobId: job.jobId, seq,
        status: entry.cancelled ? 'cancelled' : !error && r.exitCode === 0 ? 'succeeded' : 'failed',
        message: error,
        durationMs: Date.now() - started,
        exit: { exitCode: r.exitCode ?? -1, signal: r.signal ?? '', timedOut: entry.timedOut },
        failedStep: '', changed: 0, unchanged: 0, skipped: 0,
      } });
      this.log.info({ job: job.jobId, exitCode: r.exitCode, signal: r.signal }, 'exec finished');
    });
  }

  cancel(jobId: string): void {
    const e = this.running.get(jobId);
    if (!e) return;
    e.cancelled = true;
    this.kill(jobId);
  }

  /** SIGTERM to the whole process group, SIGKILL if it lingers. */
  private kill(jobId: string): void {
    const e = this.running.get(jobId);
    const pid = e?.child.pid;
    if (!e || pid === undefined) return;
    signalGroup(pid, 'SIGTERM');
    e.killTimer ??= setTimeout(() => signalGroup(pid, 'SIGKILL'), KILL_GRACE_MS);
  }

  /** Cancels every running job (agent shutdown). */
  cancelAll(): void {
    for (const id of this.running.keys()) this.cancel(id);
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // the group is already gone
  }
}

function startError(file: string, r: { code?: string; message?: string; originalMessage?: string }): string {
  if (r.code === 'ENOENT') return `command not found: ${file}`;
  if (r.code === 'EACCES') return `permission denied: ${file}`;
  return `could not start ${file}: ${r.originalMessage ?? r.message ?? 'unknown error'}`;
}

function readLines(stream: Readable | null, onLine: (l: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    rl.on('line', onLine);
    rl.on('close', resolve);
  });
}
