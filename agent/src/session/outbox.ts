import type { AgentMessage } from '../../../common/src/gen/ferry/v1/session.js';

interface Entry {
  jobId: string;
  seq: number;
  msg: AgentMessage;
}

/**
 * Job messages (output lines and results) kept until the controller acks
 * them. Every message is sent at most once per connection: immediately when
 * connected, or on the next connection after the controller's welcome says
 * what it already holds. Together with the controller's per-job sequence
 * check, no line is lost and none is shown twice.
 */
export class Outbox {
  private readonly entries: Entry[] = [];
  private send: ((m: AgentMessage) => void) | undefined;

  /** Adds a message; sends it now if a connection is up. */
  push(jobId: string, seq: number, msg: AgentMessage): void {
    const e = { jobId, seq, msg };
    this.entries.push(e);
    this.send?.(e.msg);
  }

  /** Drops everything of `jobId` up to and including `seq`. */
  ack(jobId: string, seq: number): void {
    let w = 0;
    for (let r = 0; r < this.entries.length; r++) {
      const e = this.entries[r]!;
      if (!(e.jobId === jobId && e.seq <= seq)) this.entries[w++] = e;
    }
    this.entries.length = w;
  }

  /** A connection is ready: apply what the controller holds, resend the rest in order. */
  attach(send: (m: AgentMessage) => void, held: ReadonlyArray<{ jobId: string; seq: number }>): void {
    for (const h of held) this.ack(h.jobId, h.seq);
    this.send = send;
    for (const e of [...this.entries]) send(e.msg);
  }

  detach(): void {
    this.send = undefined;
  }

  /** Jobs with messages the controller has not acknowledged. */
  jobIds(): Set<string> {
    return new Set(this.entries.map((e) => e.jobId));
  }

  get size(): number {
    return this.entries.length;
  }
}
