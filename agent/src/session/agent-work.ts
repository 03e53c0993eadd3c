import { join } from 'node:path';
import { BundleState, JobKind, type BundleProgress, type ControllerMessage, type HeldBundle, type JobStart, type AgentMessage } from '../../../common/src/gen/ferry/v1/session.js';
import type { HostFacts } from '../../../common/src/gen/ferry/v1/common.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import { STEP_SCHEMAS } from '../../../common/src/plan/step-registry.js';
import type { StepSchema } from '../../../common/src/plan/step-schema.js';
import { BundleCache } from '../bundles/bundle-cache.js';
import { BundleStager } from '../bundles/stager.js';
import { ExecRunner } from '../exec/exec-runner.js';
import { JobRunner } from '../jobs/job-runner.js';
import { JobStore } from '../jobs/job-store.js';
import { STEP_EXECUTORS } from '../steps/registry.js';
import type { StepExecutor } from '../steps/step.js';
import type { ChunkSource } from '../bundles/chunk-source.js';
import type { AgentState } from '../state/agent-state.js';
import { Outbox } from './outbox.js';
import type { RelayEndpoint } from '../../../common/src/gen/ferry/v1/session.js';
import { GrpcChunkSource } from '../bundles/grpc-chunk-source.js';
import { controllerCreds, relayCreds } from '../grpc-creds.js';
import { FallbackChunkSource, RelayHealth } from '../relay/fallback-source.js';
import { RelayRole } from '../relay/relay-role.js';
import { ResolveClient } from '../relay/resolve-client.js';
import { ReleaseUpgrader } from '../upgrade/release-upgrade.js';
import { systemUpgradeHost, type UpgradeHost } from '../upgrade/upgrade-host.js';

export interface AgentWorkOptions {
  state: AgentState;
  log: Logger;
  facts: () => Promise<HostFacts>;
  /** The controller address currently in use (chunks are fetched from it). */
  address: () => string;
  /** Sends an ephemeral message if connected (progress); dropped otherwise. */
  sendNow: (m: AgentMessage) => void;
  root?: string;
  /** Cap on bundle bytes per second from the controller (thin WAN links); 0 = unlimited. */
  bandwidthBytesPerSec?: number;
  executors?: ReadonlyMap<string, StepExecutor<unknown>>;
  schemas?: ReadonlyMap<string, StepSchema<unknown>>;
  /** Relays: how long one that sent nothing is waited for (default 10 s), and how long one that failed is skipped (default 30 s). */
  relayStallMs?: number;
  relayDownMs?: number;
  relayStatusEveryMs?: number;
  /** systemd and the binary, for self-upgrades (default: this host's). */
  upgradeHost?: UpgradeHost;
  /** The settings' upgrade-window, used when the controller sets none. */
  upgradeWindowMs?: number;
}

/**
 * Everything the agent does for the controller, independent of any one
 * connection: ad-hoc commands, plan jobs, bundle staging, and the outbox of
 * messages awaiting acknowledgement. The session loop feeds it messages and
 * attaches the outbox when connected.
 */
export class AgentWork {
  readonly outbox = new Outbox();
  readonly exec: ExecRunner;
  readonly jobs: JobRunner;
  readonly bundles: BundleCache;
  /** Stages bundles (prefetch, jobs); public for tests that stage directly. */
  readonly stager: BundleStager;
  /** The relays the controller assigned this host, most preferred first (docs/relays.md). */
  relays: RelayEndpoint[] = [];
  readonly relayHealth: RelayHealth;
  /** This host as a relay, when the controller made it one. */
  readonly relay: RelayRole;
  private readonly upgrader: ReleaseUpgrader;
  /** Chunks.ResolveHttp on the controller, for this host's relay registry endpoints (relay/relay-registry.ts). */
  private readonly resolver = new ResolveClient(() => {
    const loaded = this.o.state.load();
    const address = this.o.address();
    return { address, creds: controllerCreds(loaded.caPem, loaded), key: `${address}\n${loaded.certPem}` };
  });

  constructor(private readonly o: AgentWorkOptions) {
    const jobStore = new JobStore(o.state.dir);
    // Exec job ids are journaled beside plan job ids: a start resent after a restart runs neither kind twice.
    this.exec = new ExecRunner(this.outbox, o.log.child({ part: 'exec' }), jobStore);
    this.bundles = new BundleCache(join(o.state.dir, 'bundles'), o.log.child({ part: 'bundles' }));
    this.relayHealth = new RelayHealth(o.relayDownMs);
    this.relay = new RelayRole({
      state: o.state, log: o.log.child({ part: 'relay' }), sendNow: o.sendNow, upstream: () => this.chunkSource(false), statusEveryMs: o.relayStatusEveryMs,
      resolveHttp: (req) => this.resolver.resolve(req),
      upstreamBytesPerSec: o.bandwidthBytesPerSec ?? 0,
    });
    this.stager = new BundleStager(this.bundles, o.state, () => this.chunkSource(true), o.log.child({ part: 'stage' }), o.bandwidthBytesPerSec ?? 0);
    this.upgrader = new ReleaseUpgrader({
      state: o.state, log: o.log.child({ part: 'upgrade' }), host: o.upgradeHost ?? systemUpgradeHost, defaultWindowMs: o.upgradeWindowMs,
      stage: (req, progress, localFiles) => this.stager.stage(req, progress, undefined, localFiles),
      filesDir: (id) => this.bundles.filesDir(id),
      report: (r) => o.sendNow({ msg: { $case: 'upgradeReport', value: r } }),
      progress: (p) => o.sendNow({ msg: { $case: 'bundleProgress', value: p } }),
    });
    this.jobs = new JobRunner({
      store: jobStore, outbox: this.outbox, log: o.log.child({ part: 'jobs' }),
      executors: o.executors ?? STEP_EXECUTORS, schemas: o.schemas ?? STEP_SCHEMAS,
      trustedKeys: () => o.state.load().identity.operatorKeys,
      bundles: (job, signal) => this.jobBundles(job, signal),
      facts: async () => (await o.facts()) as unknown as Record<string, unknown>,
      labels: () => o.state.load().identity.labels,
      stateDir: join(o.state.dir, 'steps'), root: o.root ?? '/',
      fleet: { ca: o.state.caPath, cert: o.state.certPath, key: o.state.keyPath },
      relayRegistries: () => this.relays.map((r) => r.registryAddress).filter((a) => a !== ''),
    });
  }

  /** Picks up where a previous agent process stopped: unacknowledged messages and unfinished jobs. */
  resume(): void {
    this.jobs.resumeAll();
  }

  handle(m: ControllerMessage): void {
    switch (m.msg?.$case) {
      case 'jobStart':
        this.start(m.msg.value);
        break;
      case 'jobCancel':
        // One id space: whichever runner has the job stops it, the other ignores the id.
        this.exec.cancel(m.msg.value.jobId);
        this.jobs.cancel(m.msg.value.jobId);
        break;
      case 'bundleStage':
        this.stager.stage(m.msg.value, this.progressReporter()).catch(() => undefined);
        break;
      case 'relays':
        this.relays = m.msg.value.relays;
        this.o.log.info({ relays: this.relays.map((r) => r.address), relay: Boolean(m.msg.value.role) }, 'relay assignment');
        void this.relay.apply(m.msg.value.role);
        break;
      case 'relayCert':
        void this.relay.onCert(m.msg.value);
        break;
      case 'relayPins':
        void this.relay.onPins(m.msg.value);
        break;
      case 'upgrade':
        void this.upgrader.handle(m.msg.value);
        break;
      case 'ack':
        this.outbox.ack(m.msg.value.jobId, m.msg.value.seq);
        this.jobs.acked(m.msg.value.jobId, m.msg.value.seq);
        break;
      default:
        break;
    }
  }

  /** Hands a job to the runner of its kind; each refuses a job id it has run before. */
  private start(job: JobStart): void {
    switch (job.kind) {
      case JobKind.JOB_KIND_EXEC:
        if (!job.exec) break;
        this.exec.start({ jobId: job.jobId, ...job.exec });
        return;
      case JobKind.JOB_KIND_PLAN:
        this.jobs.start(job);
        return;
      default:
        break;
    }
    this.o.log.warn({ job: job.jobId, kind: job.kind }, 'job of an unknown kind (or without its spec) ignored; the controller may be newer than this agent');
  }

  /** Jobs running or holding messages not yet acknowledged, of either kind (told to the controller in hello). */
  openJobs(): string[] {
    return [...new Set([...this.exec.jobIds(), ...this.jobs.jobIds(), ...this.outbox.jobIds()])];
  }

  held(): HeldBundle[] {
    return this.bundles.held();
  }

  busy(): boolean {
    return this.exec.jobIds().length > 0 || this.outbox.size > 0;
  }

  /** Shutdown: ad-hoc commands are cancelled (their results still go out); plan jobs are suspended to resume next start; a relay stops serving. */
  async stop(): Promise<void> {
    this.exec.cancelAll();
    await this.relay.stop();
    this.resolver.close();
    await this.jobs.suspendAll();
  }

  /** Sends a stage's progress; the final report names the relays it fell back from, so the controller hears of it. */
  private progressReporter(): (p: BundleProgress) => void {
    const from = this.relayHealth.lastSeq;
    return (p) => {
      const final = p.state === BundleState.BUNDLE_STATE_READY || p.state === BundleState.BUNDLE_STATE_FAILED;
      const relayFallbacks = final ? this.relayHealth.fallbacks.filter((f) => f.seq > from).map((f) => `${f.relay}: ${f.reason}`) : [];
      this.o.sendNow({ msg: { $case: 'bundleProgress', value: { ...p, relayFallbacks } } });
    };
  }

  /** The controller's Chunks.Fetch, with this agent's identity. */
  private controllerSource(): GrpcChunkSource {
    const loaded = this.o.state.load();
    return GrpcChunkSource.connect(this.o.address(), controllerCreds(loaded.caPem, loaded));
  }

  /**
   * Chunks for one stage: this host's own relay cache when it is a relay,
   * the assigned relays in order, then the controller
   * (relay/fallback-source.ts). A relay's upstream is the same without its
   * own cache (`withLocal` false): its assigned relays (a region relay in
   * front of site relays; the controller never assigns a cycle), then the
   * controller.
   */
  private chunkSource(withLocal = true): ChunkSource & { close(): void } {
    const controller = this.controllerSource();
    const local = withLocal ? this.relay.localLink() : undefined;
    if (this.relays.length === 0 && !local) return controller;
    const loaded = this.o.state.load();
    const remote = this.relays.map((r) => {
      const source = GrpcChunkSource.connect(r.address, relayCreds(loaded.caPem, loaded, r.agentId), {}, `relay ${r.agentId}`);
      return { agentId: r.agentId, address: r.address, source, recheck: async (d: string[]) => { await source.recheck(d); }, close: () => source.close() };
    });
    // A relay host stages through its own cache first: the site's uplink then carries one copy for it and its hosts.
    const links = local ? [{ agentId: loaded.identity.agentId, address: 'this host', ...local, close: () => undefined }, ...remote] : remote;
    const fallback = new FallbackChunkSource({ relays: links, controller, health: this.relayHealth, log: this.o.log.child({ part: 'relays' }), stallMs: this.o.relayStallMs });
    return {
      fetch: (digests, signal) => fallback.fetch(digests, signal),
      close: () => {
        for (const l of links) l.close();
        controller.close();
      },
    };
  }

  /** A job's bundles, staged on demand when a prefetch did not already do it. */
  private async jobBundles(job: JobStart, signal: AbortSignal): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const b of job.bundles) {
      if (!this.bundles.isHeld(b.bundleId)) {
        if (!b.signed) throw new FerryError(ErrorCode.BundleInvalid, `job ${job.jobId} names bundle ${b.as} without its manifest`);
        await this.stager.stage({ bundleId: b.bundleId, signed: b.signed }, this.progressReporter(), signal);
      }
      out[b.as] = this.bundles.filesDir(b.bundleId);
    }
    return out;
  }
}
