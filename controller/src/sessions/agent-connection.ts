import type { ServerDuplexStream } from '@grpc/grpc-js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { AgentMessage, ControllerMessage, Hello } from '../../../common/src/gen/ferry/v1/session.js';
import type { Logger } from '../../../common/src/log.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { toServiceError } from '../../../common/src/grpc-status.js';
import type { Peer } from '../services/peer-auth.js';
import type { LiveSession } from './registry.js';

/** What a connection needs from the rest of the controller. */
export interface ConnectionHooks {
  heartbeatIntervalMs: number;
  /**
   * Hello received: returns what the controller already holds of the agent's
   * open jobs, and advice for the agent's log (an accepted but outdated
   * version). Throws to refuse the session.
   */
  onHello(conn: AgentConnection, hello: Hello): Promise<{ acked: Array<{ jobId: string; seq: number }>; advice?: string }>;
  onMessage(conn: AgentConnection, msg: AgentMessage): Promise<void>;
  onClose(conn: AgentConnection): void;
}

type State = 'awaiting-hello' | 'open' | 'closed';

const HELLO_TIMEOUT_MS = 15_000;

/**
 * One agent's bidirectional session. Owns the stream: every write goes
 * through send(), every end through close(), so a half-closed stream cannot
 * be written to and a session is closed exactly once.
 */
export class AgentConnection implements LiveSession {
  readonly connectedAt = Date.now();
  hostname = '';
  private state: State = 'awaiting-hello';
  private readonly pendingAcks = new Map<string, number>();
  private ackScheduled = false;
  private lastHeard = Date.now();
  private readonly timers: NodeJS.Timeout[] = [];
  private ended!: () => void;
  /** Settles once the session is closed, by either side, for any reason. */
  readonly closed = new Promise<void>((resolve) => { this.ended = resolve; });

  constructor(
    private readonly call: ServerDuplexStream<AgentMessage, ControllerMessage>,
    readonly peer: Peer,
    private readonly hooks: ConnectionHooks,
    private readonly log: Logger,
  ) {
    this.timers.push(setTimeout(() => {
      if (this.state === 'awaiting-hello') this.fail(new FerryError(ErrorCode.InvalidArgument, 'no hello within 15 s'));
    }, HELLO_TIMEOUT_MS));
    // An agent silent for three heartbeat intervals is gone even if TCP has not noticed.
    this.timers.push(setInterval(() => {
      if (Date.now() - this.lastHeard > 3 * hooks.heartbeatIntervalMs) {
        this.close('no heartbeat for three intervals');
      }
    }, hooks.heartbeatIntervalMs));
    call.on('data', (m: AgentMessage) => this.onData(m));
    call.on('end', () => this.close('agent ended the session'));
    call.on('error', (err) => {
      this.log.debug({ err: err.message }, 'session stream error');
      this.close('stream error');
    });
    call.on('cancelled', () => this.close('session cancelled'));
  }

  get agentId(): string {
    return this.peer.id;
  }

  get peerAddress(): string {
    return this.peer.address;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  send(msg: ControllerMessage): void {
    if (this.state === 'closed') return;
    this.call.write(msg);
  }

  ack(jobId: string, seq: number): void {
    const prev = this.pendingAcks.get(jobId) ?? 0;
    if (seq > prev) this.pendingAcks.set(jobId, seq);
    if (!this.ackScheduled) {
      this.ackScheduled = true;
      // Coalesce: one ack per job per turn of the event loop, not one per line.
      setImmediate(() => {
        this.ackScheduled = false;
        for (const [id, s] of this.pendingAcks) this.send({ msg: { $case: 'ack', value: { jobId: id, seq: s } } });
        this.pendingAcks.clear();
      });
    }
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const t of this.timers) clearTimeout(t);
    this.log.info({ agent: this.agentId, reason }, 'session closed');
    try {
      this.call.end();
    } catch {
      // the stream may already be gone; closing is best effort
    }
    this.hooks.onClose(this);
    this.ended();
  }

  /** Ends the session with an error status the agent will show. */
  fail(err: FerryError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const t of this.timers) clearTimeout(t);
    this.call.emit('error', toServiceError(err));
    this.hooks.onClose(this);
    this.ended();
  }

  private onData(m: AgentMessage): void {
    this.lastHeard = Date.now();
    if (this.state === 'closed' || !m.msg) return;
    if (this.state === 'awaiting-hello') {
      if (m.msg.$case !== 'hello') {
        this.fail(new FerryError(ErrorCode.InvalidArgument, `expected hello first, got ${m.msg.$case}`));
        return;
      }
      const hello = m.msg.value;
      this.hostname = hello.facts?.hostname ?? '';
      this.state = 'open';
      this.hooks.onHello(this, hello).then(
        ({ acked, advice }) => this.send({
          msg: {
            $case: 'welcome',
            value: {
              controllerVersion: FERRY_VERSION,
              heartbeatIntervalMs: this.hooks.heartbeatIntervalMs,
              serverTimeMs: Date.now(),
              acked,
              advice: advice ?? '',
            },
          },
        }),
        (err) => this.fail(err instanceof FerryError ? err : new FerryError(ErrorCode.Internal, String(err))),
      );
      return;
    }
    if (m.msg.$case === 'heartbeat') {
      this.send({ msg: { $case: 'heartbeat', value: { timeMs: Date.now() } } });
      return;
    }
    this.hooks.onMessage(this, m).catch((err) => {
      this.log.error({ err, agent: this.agentId }, 'handling agent message failed');
    });
  }
}
