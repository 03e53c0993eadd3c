/**
 * What the job sequencer (job-sequencer.ts) holds of a host's job, the
 * log that keeps it (store-job-log.ts) and the catching
 * up on a job another replica moved on: the model, apart from the rules
 * that apply messages to it.
 */
import { randomBytes } from 'node:crypto';
import type { JobOutput, JobResult, JobStart, StepEvent } from '../../../common/src/gen/ferry/v1/session.js';
import type { LiveSession } from '../sessions/registry.js';

/** One sequenced message of a job as the agent sent it: a line, a step event (plan jobs) or the result. */
export interface JobMessage {
  output?: JobOutput;
  step?: StepEvent;
  result?: JobResult;
}

/** A host's job as the controller holds it, whatever its kind (the kind travels in its JobStart only). */
export interface HeldJob {
  jobId: string;
  agentId: string;
  hostname: string;
  /** The operator-level run this host job belongs to (job_hosts.job_id). */
  runId: string;
  /** Next sequence number expected from the agent; everything below is held. */
  nextSeq: number;
  /** dispatched (sent, nothing heard back) | running | succeeded | failed | cancelled | lost */
  state: string;
  /** Why it ended, when it ended without the agent's result (as stored). */
  message?: string;
}

/**
 * Where jobs of both kinds are kept: in the store, so they survive
 * controller restarts and every replica sees them (the mailbox delivers a
 * start to the replica holding the agent's session; the one that started
 * the job follows its messages). The sequencer applies its rules on top.
 */
export interface JobLog {
  create(job: HeldJob): Promise<void>;
  /** A job not in the sequencer's memory (e.g. recorded before a controller restart); undefined when unknown. */
  load(jobId: string): Promise<HeldJob | undefined>;
  /** The agent's jobs that have not ended. */
  unfinished(agentId: string): Promise<HeldJob[]>;
  /** Holds message `seq` (the next expected) and the state it leads to, atomically. */
  append(job: HeldJob, seq: number, m: JobMessage, state: string): Promise<void>;
  /** Ends a job without a result from the agent (lost, cancelled here). */
  end(job: HeldJob, state: string, message: string): Promise<void>;
  /** Messages held after `seq`, in order (another replica may have held them). */
  messagesAfter(jobId: string, seq: number): Promise<Array<{ seq: number; m: JobMessage }>>;
  /** Where jobs now are (next sequence number, state), for the jobs followed from here. */
  progress(jobIds: readonly string[]): Promise<Map<string, { nextSeq: number; state: string }>>;
  /** Records that the job is to be cancelled, so the replica holding the agent's session sends it. */
  requestCancel(jobId: string, reason: string): Promise<void>;
}

/** Who waits for a job: told of every held message in order, then of its end once. */
export interface JobListener {
  /** The start as sent, kept to send again when it may never have arrived. */
  start?: JobStart;
  onMessage?(seq: number, m: JobMessage): void;
  /** The agent's result, or one made up here when the job is lost (seq 0). */
  onEnd?(r: JobResult): void;
  /**
   * The agent's session went away (`false`) or came back (`true`) while the
   * job was under way. The job goes on on the host; this only lets the
   * operator know why nothing arrives.
   */
  onLink?(connected: boolean): void;
}

/** States a host job does not leave; `offline`: a host of a run that had no session anywhere, so it never had a job. */
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'lost', 'offline']);

/** A new job id; kinds share one id space (the kind travels in JobStart, not in the id). */
export function newJobId(): string {
  return `j-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** A job's result made up by the controller (it did not come from the agent). */
export function controllerResult(jobId: string, status: string, message: string): JobResult {
  return { jobId, seq: 0, status, failedStep: '', message, durationMs: 0, changed: 0, unchanged: 0, skipped: 0, exit: undefined };
}

export interface Entry {
  job: HeldJob;
  log: JobLog;
  listener?: JobListener;
  /** The session its start was last written to: an agent saying hello on that session will still receive it. */
  sentTo?: LiveSession;
  /** The listener was told the session dropped (so a new session is news; a replaced one is not). */
  down?: boolean;
  /** The session a cancel recorded in the store was last sent on. */
  cancelSentTo?: LiveSession;
}

/**
 * Another replica moved the job on (`stored` is the store's view): the
 * listener here is handed the messages it did not see, in order, and the
 * end once — so an operator on this replica sees every line of a host
 * whose session is elsewhere, once. Returns whether the job has ended
 * (the sequencer then forgets it).
 */
export async function replay(e: Entry, stored: HeldJob): Promise<boolean> {
  const listening = e.listener?.onMessage || e.listener?.onEnd;
  let ended = false;
  if (listening && stored.nextSeq > e.job.nextSeq) {
    for (const { seq, m } of await e.log.messagesAfter(e.job.jobId, e.job.nextSeq - 1)) {
      if (seq < e.job.nextSeq || seq >= stored.nextSeq) continue;
      e.job.nextSeq = seq + 1;
      e.listener?.onMessage?.(seq, m);
      if (m.result) {
        ended = true;
        e.listener?.onEnd?.(m.result);
      }
    }
  }
  Object.assign(e.job, { nextSeq: stored.nextSeq, state: stored.state });
  if (!TERMINAL.has(stored.state)) return false;
  if (listening && !ended) e.listener?.onEnd?.(controllerResult(e.job.jobId, stored.state, stored.message ?? ''));
  return true;
}

