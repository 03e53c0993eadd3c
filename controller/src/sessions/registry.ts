import type { ControllerMessage } from '../../../common/src/gen/ferry/v1/session.js';

/** A live agent session, as the rest of the controller sees it. */
export interface LiveSession {
  readonly agentId: string;
  readonly hostname: string;
  readonly peerAddress: string;
  readonly connectedAt: number;
  send(msg: ControllerMessage): void;
  /** Queues an acknowledgement; acks are coalesced per job before sending. */
  ack(jobId: string, seq: number): void;
  close(reason: string): void;
}

/** The set of connected agents; at most one session per agent id. */
export class SessionRegistry {
  private readonly sessions = new Map<string, LiveSession>();
  private readonly listeners = new Set<(agentId: string, up: boolean) => void>();

  /** Adds a session, closing an older one of the same agent (it reconnected). */
  attach(s: LiveSession): void {
    const old = this.sessions.get(s.agentId);
    this.sessions.set(s.agentId, s);
    if (old && old !== s) old.close('replaced by a newer session of the same agent');
    for (const l of this.listeners) l(s.agentId, true);
  }

  /** Removes `s` if it is still the agent's current session. */
  detach(s: LiveSession): boolean {
    if (this.sessions.get(s.agentId) !== s) return false;
    this.sessions.delete(s.agentId);
    for (const l of this.listeners) l(s.agentId, false);
    return true;
  }

  get(agentId: string): LiveSession | undefined {
    return this.sessions.get(agentId);
  }

  get size(): number {
    return this.sessions.size;
  }

  all(): LiveSession[] {
    return [...this.sessions.values()];
  }

  onChange(l: (agentId: string, up: boolean) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  closeAll(reason: string): void {
    for (const s of [...this.sessions.values()]) s.close(reason);
  }
}
