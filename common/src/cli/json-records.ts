import type { ExecEvent, JobEvent } from '../gen/ferry/v1/admin.js';

/**
 * The one way both CLIs print `--json` (docs/json.md, "Conventions"): every
 * record is one JSON object on its own line. Lists and streams alike are
 * newline-delimited, so `| head -1`, `jq -c` and line-by-line readers work the
 * same on `agents ls` as on `exec`; an empty list prints nothing.
 */
export function writeRecord(record: object, out: NodeJS.WritableStream = process.stdout): void {
  out.write(`${JSON.stringify(record)}\n`);
}

/** Prints a list as newline-delimited records (see {@link writeRecord}). */
export function writeRecords(records: readonly object[], out: NodeJS.WritableStream = process.stdout): void {
  if (records.length) out.write(records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Hosts by state as `--json` prints them (`{"succeeded": 2, "failed": 1}`), from a message's list of counts. */
export function countsByState(counts: ReadonlyArray<{ state: string; count: number }>): Record<string, number> {
  return Object.fromEntries(counts.map((c) => [c.state, c.count]));
}

/**
 * One `ferry exec --json` record for a stream event: the oneof's case becomes
 * the `type` field and its value's fields sit beside it (docs/json.md,
 * "exec.started", "exec.line", "exec.finished", "exec.summary"); undefined for
 * an empty event. The finished record names the outcome in `result`.
 */
export function execRecord(ev: ExecEvent): object | undefined {
  const e = ev.event;
  switch (e?.$case) {
    case 'started':
      return { type: 'started', agentId: e.value.agentId, hostname: e.value.hostname, jobId: e.value.jobId };
    case 'line':
      return { type: 'line', agentId: e.value.agentId, hostname: e.value.hostname, stream: e.value.stderr ? 'stderr' : 'stdout', line: e.value.line, seq: e.value.seq, timeMs: e.value.timeMs };
    case 'finished': {
      const f = e.value;
      const result = f.offline ? 'offline' : f.cancelled ? 'cancelled' : f.timedOut ? 'timed-out' : f.error ? 'error' : f.exitCode === 0 ? 'ok' : 'failed';
      return { type: 'finished', agentId: f.agentId, hostname: f.hostname, result, exitCode: f.offline ? null : f.exitCode, signal: f.signal || null, error: f.error || null, durationMs: f.durationMs };
    }
    case 'summary':
      return { type: 'summary', matched: e.value.matched, succeeded: e.value.succeeded, failed: e.value.failed, offline: e.value.offline };
    case 'link':
      return { type: 'link', agentId: e.value.agentId, hostname: e.value.hostname, connected: e.value.connected };
    default:
      return undefined;
  }
}

/**
 * One `ferry run --json` record for a job event (docs/json.md, "run.*"): like
 * {@link execRecord}, the case is `type`, every record carries the host it is
 * about (empty for the summary), and optional texts are null, not "".
 */
export function runRecord(ev: JobEvent): object | undefined {
  const e = ev.event;
  const host = { agentId: ev.agentId, hostname: ev.hostname };
  switch (e?.$case) {
    case 'started':
      return { type: 'started', ...host, jobId: e.value };
    case 'line':
      return { type: 'line', ...host, stream: e.value.stderr ? 'stderr' : 'stdout', line: e.value.line, seq: e.value.seq, timeMs: e.value.timeMs };
    case 'step': {
      const s = e.value;
      return { type: 'step', ...host, jobId: s.jobId, stepIndex: s.stepIndex, stepCount: s.stepCount, stepId: s.stepId, finished: s.finished,
        status: s.status || null, message: s.message || null, diff: s.diff || null, errorCode: s.errorCode || null, attempt: s.attempt, resumed: s.resumed };
    }
    case 'result': {
      const r = e.value;
      return { type: 'result', ...host, jobId: r.jobId, status: r.status, failedStep: r.failedStep || null, message: r.message || null,
        durationMs: r.durationMs, changed: r.changed, unchanged: r.unchanged, skipped: r.skipped };
    }
    case 'offline':
      return { type: 'offline', ...host, reason: e.value };
    case 'link':
      return { type: 'link', ...host, connected: e.value.connected };
    case 'summary':
      return { type: 'summary', jobId: e.value.jobId, matched: e.value.matched, succeeded: e.value.succeeded, failed: e.value.failed, offline: e.value.offline, changedSteps: e.value.changedSteps };
    default:
      return undefined;
  }
}
