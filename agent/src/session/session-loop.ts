import { X509Certificate } from 'node:crypto';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { asFerryError, ErrorCode, FerryError } from '../../../common/src/errors.js';
import {
  AgentSessionClient, type AgentMessage, type ControllerMessage,
} from '../../../common/src/gen/ferry/v1/session.js';
import { clientChannelOptions } from '../../../common/src/grpc-options.js';
import { fromServiceError } from '../../../common/src/grpc-status.js';
import { FERRY_VERSION, PROTOCOL_VERSION } from '../../../common/src/version.js';
import { commitIfOnTrial } from '../upgrade/trial.js';
import { systemUpgradeHost } from '../upgrade/upgrade-host.js';
import { certLease, reauthenticate } from '../enroll/reauth.js';
import { probeController } from '../enroll/tls-probe.js';
import { controllerCreds } from '../grpc-creds.js';
import { Backoff } from './backoff.js';
import { renewalDue } from './cert-renewal.js';
import { AgentWork } from './agent-work.js';
import { untilDeadline } from '../../../common/src/until-deadline.js';
import type { SessionOptions, SessionState } from './session-options.js';
import { requestRenewal, upgradeHello } from './session-messages.js';

const WELCOME_TIMEOUT_MS = 15_000;

/**
 * Keeps one mutually authenticated session to the controller: hello,
 * heartbeats, job messages, renewal; reconnects with backoff across the
 * controller's addresses. Owns the exec runner and the outbox, which outlive
 * any single connection.
 */
export class SessionLoop {
  state: SessionState = 'idle';
  readonly work: AgentWork;
  private readonly backoff: Backoff;
  private current?: { client: InstanceType<typeof AgentSessionClient>; call: ClientDuplexStream<AgentMessage, ControllerMessage> };
  private wake?: () => void;
  /**
   * Which of the controller's addresses to dial; moves on after a failure.
   * It starts at a place derived from the agent id, so a fleet enrolled
   * with one join string spreads over the replicas it lists.
   */
  private addressIndex: number;
  private loopDone?: Promise<void>;
  /** Set when the controller said this agent may not connect (revoked, removed): retrying will not help. */
  fatal?: FerryError;
  /** The controller refused the certificate (expired by its clock, or unknown): re-authenticate before the next try. */
  private leaseRefused = false;

  constructor(private readonly opts: SessionOptions) {
    this.backoff = opts.backoff ?? new Backoff();
    this.addressIndex = spreadIndex(opts.state.load().identity.agentId);
    this.work = new AgentWork({
      state: opts.state, log: opts.log, facts: opts.facts, root: opts.root, bandwidthBytesPerSec: opts.bandwidthBytesPerSec, executors: opts.executors, schemas: opts.schemas,
      relayStallMs: opts.relayStallMs, relayDownMs: opts.relayDownMs, relayStatusEveryMs: opts.relayStatusEveryMs,
      upgradeHost: opts.upgradeHost, upgradeWindowMs: opts.upgradeWindowMs,
      address: () => this.currentAddress(),
      sendNow: (m) => this.current?.call.write(m),
    });
  }

  /** Messages awaiting acknowledgement (also used by tests). */
  get outbox() {
    return this.work.outbox;
  }

  start(): void {
    if (this.loopDone) return;
    this.work.resume();
    this.loopDone = this.loop();
  }

  private currentAddress(): string {
    const { identity } = this.opts.state.load();
    return identity.addresses[this.addressIndex % identity.addresses.length]!;
  }

  /** Cancels running jobs, gives their results `deadlineMs` to reach the controller, then closes. */
  async stop(deadlineMs = 5_000): Promise<void> {
    if (this.state === 'stopped') return;
    this.setState('stopping');
    // Bounded throughout: a step stuck past the deadline (a dial, a probe)
    // is logged and left to end by itself; the stop never hangs on it.
    const until = Date.now() + deadlineMs;
    const suspended = await untilDeadline(this.work.stop(), until);
    while (this.work.busy() && this.current && Date.now() < until) {
      await sleep(50);
    }
    this.current?.call.end();
    this.current?.client.close();
    this.wake?.();
    const ended = await untilDeadline(this.loopDone, Math.max(until, Date.now() + 1_000));
    if (!suspended || !ended) this.opts.log.warn({ deadlineMs, suspended, ended }, 'session stop passed its deadline; leaving the rest to end by itself');
    this.setState('stopped');
  }

  /** Drops the current connection (tests and renewal use it); the loop reconnects. */
  reconnectNow(): void {
    this.current?.call.cancel();
  }

  private isStopping(): boolean {
    return this.state === 'stopping' || this.state === 'stopped';
  }

  private setState(s: SessionState, error?: FerryError): void {
    this.state = s;
    const { identity } = this.opts.state.load();
    this.opts.onState?.(s, { controller: identity.addresses[this.addressIndex % identity.addresses.length]!, error });
  }

  private async loop(): Promise<void> {
    while (!this.isStopping()) {
      const { identity } = this.opts.state.load();
      const address = identity.addresses[this.addressIndex % identity.addresses.length]!;
      let err: FerryError | undefined;
      // The key is the identity and the certificate a lease: a lapsed lease
      // (host off past its expiry, or the controller refusing it) is renewed
      // by proving the key, before the session is tried with it.
      if (this.leaseRefused || certLease(this.opts.state.load().certPem).expired) {
        this.setState('reauthenticating');
        err = await this.reauth(address);
      }
      if (!err) {
        this.setState('connecting');
        err = await this.connectOnce(address);
        if (err?.code === ErrorCode.Unauthenticated) this.leaseRefused = true;
      }
      if (this.isStopping()) break;
      if (err?.code === ErrorCode.AgentRevoked || err?.code === ErrorCode.NotEnrolled) {
        this.fatal = err;
        // A revoked host serves no one: its relay certificate is still within its life, so stop the listener here.
        await this.work.relay.stop();
        this.setState('stopping', err);
        break;
      }
      if (err) this.addressIndex++;
      const delay = err ? this.backoff.next() : 0;
      this.setState('backoff', err);
      if (err) this.opts.log.warn({ code: err.code, err: err.message, retryInMs: delay }, 'session to the controller failed');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wake = () => { clearTimeout(t); resolve(); };
      });
    }
  }

  /** Re-authenticates with the enrolled key; resolves with why it failed, if it did. */
  private async reauth(address: string): Promise<FerryError | undefined> {
    const { certPem } = this.opts.state.load();
    const expiredAt = new Date(certLease(certPem).notAfterMs).toISOString();
    this.opts.log.warn({ controller: address, notAfter: expiredAt }, 'certificate lapsed or refused; re-authenticating with the enrolled key');
    try {
      const { notAfter } = await reauthenticate(this.opts.state, address);
      this.leaseRefused = false;
      this.opts.log.info({ controller: address, notAfter }, 're-authenticated: new certificate for the enrolled key');
      return undefined;
    } catch (e) {
      const err = asFerryError(e);
      if (err.code === ErrorCode.ReauthWindowPassed) {
        // Not fatal: the operator can allow it again, and then this host must come back by itself.
        this.opts.log.error({ controller: address, err: err.message, hint: err.hint }, 're-authentication refused: the re-authentication window has passed');
      }
      return err;
    }
  }

  /** One connection, from dial to close. Resolves with why it ended (undefined: ended cleanly to reconnect). */
  private connectOnce(address: string): Promise<FerryError | undefined> {
    const loaded = this.opts.state.load();
    const client = new AgentSessionClient(address, controllerCreds(loaded.caPem, loaded), clientChannelOptions());
    const call = client.connect();
    this.current = { client, call };
    let heartbeat: NodeJS.Timeout | undefined;
    let welcomeTimer: NodeJS.Timeout | undefined;
    let lastHeard = Date.now();
    let renewing = false;

    return new Promise((resolve) => {
      let settled = false;
      const finish = (err?: FerryError) => {
        if (settled) return;
        settled = true;
        clearInterval(heartbeat);
        clearTimeout(welcomeTimer);
        this.outbox.detach();
        this.current = undefined;
        call.cancel();
        client.close();
        resolve(err);
      };
      const send = (m: AgentMessage) => { if (!settled) call.write(m); };

      call.on('data', (m: ControllerMessage) => {
        lastHeard = Date.now();
        switch (m.msg?.$case) {
          case 'welcome': {
            clearTimeout(welcomeTimer);
            const w = m.msg.value;
            this.backoff.reset();
            this.setState('connected');
            this.opts.log.info({ controller: address, version: w.controllerVersion, skewMs: Date.now() - w.serverTimeMs }, 'connected to the controller');
            if (w.advice) this.opts.log.warn({ controller: address, advice: w.advice }, 'the controller advises an upgrade');
            this.outbox.attach(send, w.acked);
            // Connected over mTLS: a new version on trial checks itself and commits now.
            const committed = commitIfOnTrial(this.opts.state, this.opts.log, this.opts.upgradeHost ?? systemUpgradeHost);
            if (committed) send({ msg: { $case: 'upgradeReport', value: committed } });
            const every = Math.max(100, w.heartbeatIntervalMs || 15_000);
            heartbeat = setInterval(() => {
              if (Date.now() - lastHeard > 3 * every) {
                finish(new FerryError(ErrorCode.Unavailable, `no word from the controller at ${address} for ${3 * every} ms`));
                return;
              }
              send({ msg: { $case: 'heartbeat', value: { timeMs: Date.now() } } });
              if (!renewing && this.needsRenewal(loaded.certPem)) {
                renewing = true;
                void requestRenewal(loaded.keyPem, send);
              }
            }, every);
            if (this.needsRenewal(loaded.certPem)) {
              renewing = true;
              void requestRenewal(loaded.keyPem, send);
            }
            break;
          }
          case 'renewed':
            this.opts.state.saveCert(m.msg.value.certPem);
            this.opts.log.info({ notAfter: new X509Certificate(m.msg.value.certPem).validTo }, 'certificate renewed; reconnecting with it');
            finish();
            break;
          default:
            this.work.handle(m);
            break;
        }
      });
      call.on('error', (e) => {
        void this.diagnose(address, loaded.caPem, fromServiceError(e)).then(finish);
      });
      // 'end' can come before 'error'; the final status decides how the session ended.
      call.on('status', (st) => {
        if (st.code === 0) finish(new FerryError(ErrorCode.Unavailable, `the controller at ${address} closed the session`));
      });

      welcomeTimer = setTimeout(() => finish(new FerryError(ErrorCode.Unavailable, `no welcome from ${address} within ${WELCOME_TIMEOUT_MS} ms`)), WELCOME_TIMEOUT_MS);
      void this.opts.facts().then((facts) => send({
        msg: {
          $case: 'hello',
          value: { agentVersion: FERRY_VERSION, protocolVersion: PROTOCOL_VERSION, facts, openJobs: this.work.openJobs(), bundles: this.work.held(), ...upgradeHello(this.opts.state.dir, this.opts.log) },
        },
      }));
    });
  }

  private needsRenewal(certPem: string): boolean {
    return renewalDue(certPem, Date.now(), this.opts.renewAtFraction);
  }

  /** Replaces a bare "unavailable" with the specific reason, found by probing the controller. */
  private async diagnose(address: string, caPem: string, err: FerryError): Promise<FerryError> {
    if (err.code !== ErrorCode.Unavailable || this.state === 'stopping') return err;
    try {
      await probeController(address, { caPem });
      return err;
    } catch (probeErr) {
      return probeErr as FerryError;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A stable number from the agent id (FNV-1a), to pick its first controller address. */
export function spreadIndex(agentId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < agentId.length; i++) h = Math.imul(h ^ agentId.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
