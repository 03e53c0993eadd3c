import type { Server } from '@grpc/grpc-js';
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DirLock } from '../../common/src/dir-lock.js';
import { HealthCheckResponse_ServingStatus as Serving } from '../../common/src/gen/grpc/health/v1/health.js';
import type { Logger } from '../../common/src/log.js';
import type { ControllerContext } from './services/context.js';
import type { ControllerConfig } from './config.js';
import { CertificateAuthority } from './pki/ca.js';
import { HealthState } from './services/health.js';
import { SessionRegistry } from './sessions/registry.js';
import { ConsoleServer } from './console/console-server.js';
import { openStore } from './store/open-store.js';
import type { Db } from './store/db.js';
import { PgDb } from './store/pg-db.js';
import type { Leadership } from './ha/leadership.js';
import { ReplicaRegistry } from './ha/replicas.js';
import type { SessionPresence } from './ha/presence.js';
import type { JobMailbox } from './jobs/job-mailbox.js';
import { claimSharedChunkDir } from './ha/shared-chunks.js';
import { loadSharedCa } from './ha/shared-ca.js';
import { OperatorStore } from './store/operators.js';
import { RegistryServer } from './registry/registry-server.js';
import { registerFleetGauges } from './metrics/fleet-gauges.js';
import { OpsHttp } from './metrics/ops-http.js';
import { untilDeadline } from '../../common/src/until-deadline.js';
import { missingMallocEnv } from '../../common/src/malloc-env.js';
import { PromMetrics } from './metrics/prom-metrics.js';
import { clearStaleSocket, localAddresses, serveAdminSocket, serveTls } from './controller-listeners.js';
import { newControllerContext } from './controller-context.js';
import { wireReplicas } from './controller-replicas.js';

export type ControllerState = 'starting' | 'running' | 'draining' | 'stopped';

/**
 * The controller process: CA, store, TLS server for agents and remote
 * operators, admin socket for local operators. States go
 * starting → running → draining → stopped; stop() has a deadline. This
 * file orders the start and the stop; the parts are made in
 * controller-context.ts, controller-replicas.ts and controller-listeners.ts.
 */
export class Controller {
  state: ControllerState = 'starting';
  private constructor(
    readonly config: ControllerConfig,
    readonly ctx: ControllerContext,
    private readonly tlsServer: Server,
    private readonly adminServer: Server,
    private readonly health: HealthState,
    private readonly lock: DirLock,
    /** The scheduler lease: rollouts and sweeps run while this replica holds it. */
    readonly leadership: Leadership,
    /** The replicas sharing the store (one, on SQLite). */
    readonly replicas: ReplicaRegistry,
    private readonly beater: NodeJS.Timeout,
    private readonly mailbox: JobMailbox | undefined,
    private readonly presence: SessionPresence | undefined,
    /** This process among the replicas sharing the store (the lease's owner name). */
    readonly replicaId: string,
    readonly port: number,
    /** The registry and files listener (undefined without --registry-addr). */
    readonly registry: RegistryServer | undefined,
    readonly caCreated: boolean,
    /** The metrics and health listener; undefined with --http-addr off. */
    private readonly ops: OpsHttp | undefined,
    /** The counters and gauges /metrics shows (a Registry of this controller's own). */
    readonly metrics: PromMetrics,
    private readonly console_: ConsoleServer | undefined,
  ) {}

  /** Closes the lease's own connections (PostgreSQL; set by start). */
  private closeControl: () => Promise<void> = async () => undefined;

  /** The web console's base URL, when it is on (--console-addr). */
  get consoleUrl(): string | undefined {
    return this.console_?.url;
  }

  /** The port of /metrics, /healthz and /readyz; undefined when the listener is off. */
  get httpPort(): number | undefined {
    return this.ops?.port;
  }

  /** CA pin for join strings and `ferry-agent join`. */
  get pin(): string {
    return this.ctx.ca.pin;
  }

  /** The TLS address agents dial, as host:port. */
  get address(): string {
    return this.ctx.joinAddresses()[0]!;
  }

  /**
   * Takes the data directory's lock before opening anything in it, then the
   * CA, store, scheduler, TLS port and admin socket. If any step fails, what
   * was already opened is closed again (the lock last), so a failed start
   * leaves no port, store handle or lock behind.
   */
  static async start(config: ControllerConfig, log: Logger): Promise<Controller> {
    // Everything the controller writes (store, keys, socket) is owner-only.
    process.umask(0o077);
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    chmodSync(config.dataDir, 0o700);
    const lock = DirLock.acquire(config.dataDir, {
      owner: 'a ferry controller', what: 'the controller data directory',
      hint: 'one controller per data directory: stop that one first, or give this one another --data directory',
    });
    // Undo steps for what is open so far, run in reverse if the start fails.
    const opened: Array<() => unknown> = [() => lock.release()];
    try {
      return await Controller.open(config, log, lock, opened);
    } catch (err) {
      for (const undo of opened.reverse()) {
        try {
          await undo();
        } catch (e) {
          log.warn({ err: (e as Error).message }, 'cleanup after a failed start');
        }
      }
      throw err;
    }
  }

  private static async open(config: ControllerConfig, baseLog: Logger, lock: DirLock, opened: Array<() => unknown>): Promise<Controller> {
    // This process among replicas sharing one store: every log line names it.
    const replicaId = `${hostname()}-${randomBytes(4).toString('hex')}`;
    const log = baseLog.child({ replica: replicaId });
    // A live controller with another data directory may still own the socket path.
    await clearStaleSocket(config.adminSocket);
    const { db, applied } = await openStore(config.store, config.dataDir, log);
    opened.push(() => db.close());
    if (applied) log.info({ applied, store: config.store.display }, 'store migrated');
    const shared = db.dialect === 'postgres';

    // Replicas on one PostgreSQL store share its CA (ha/shared-ca.ts); SQLite keeps it in DATA/pki only.
    const pki = join(config.dataDir, 'pki');
    const { ca, created } = shared ? await loadSharedCa(db, pki) : await CertificateAuthority.loadOrCreate(pki);
    const wildcard = /^(0\.0\.0\.0|\[::\]):/.test(config.listen);
    const sans = [...config.sans, ...(wildcard ? localAddresses() : [])].filter((v, i, a) => a.indexOf(v) === i);
    const serverCert = await ca.ensureServerCert(pki, sans);
    // On PostgreSQL the lease and the replica heartbeat use connections of their own: session work in a burst
    // (a thousand agents reconnecting at once) queues on the main pool, and a renewal waiting behind it past the
    // lease's ttl loses the lease (the ha benchmark saw the scheduler lose it four times while 1,000 agents connected).
    const control: Db = config.store.kind === 'postgres' ? new PgDb({ url: config.store.url, log: log.child({ part: 'store-control' }), poolSize: 2 }) : db;
    if (control !== db) opened.push(() => control.close());
    const replicas = new ReplicaRegistry(control, { id: replicaId, name: hostname() }, 3 * config.leaseTtlMs);

    const sessions = new SessionRegistry();
    let leadership: Leadership | undefined;
    let presence: SessionPresence | undefined;
    let mailbox: JobMailbox | undefined;
    const metrics = new PromMetrics(replicaId);
    registerFleetGauges(metrics.registry, {
      db, sessions,
      // Replicas: online is every live replica's sessions, from the store (presence and leadership are set below, before anything serves).
      online: async () => (presence ? (await presence.connected()).size : sessions.size),
      leader: () => leadership?.isLeader() ?? false,
    });
    let port = 0;
    const listenHost = config.listen.replace(/:\d+$/, '');
    // Replicas serve one chunk directory on shared storage; one whose directory is not that one is refused here (ha/shared-chunks.ts).
    if (shared) await claimSharedChunkDir(db, config.chunkDir);
    const ctx = newControllerContext({
      config, log, ca, db, sessions, metrics,
      // Every live replica's addresses (this one's first): agents spread over them and move on when one goes.
      joinAddresses: () => replicas.joinAddresses(ownAddresses()),
    });
    const ownAddresses = () => config.advertise.length > 0
      ? config.advertise
      : [`${wildcard ? (localAddresses()[0] ?? '127.0.0.1') : listenHost}:${port}`];

    ({ leadership, presence, mailbox } = wireReplicas(ctx, { replicaId, replicas, control, shared, opened }));

    // Before any agent can connect: a lone controller holds the lease (and drives its rollouts) before it serves.
    opened.push(() => leadership!.stop());
    await leadership.start();

    const health = new HealthState(['ferry.v1.Enrollment', 'ferry.v1.AgentSession', 'ferry.v1.Chunks', 'ferry.v1.Admin', 'ferry.v1.Rollouts']);
    const tls = await serveTls(ctx, health, serverCert, opened);
    const tlsServer = tls.server;
    port = tls.port;

    let registry: RegistryServer | undefined;
    if (config.registryAddr) {
      registry = await RegistryServer.start({
        addr: config.registryAddr, certChainPem: serverCert.certChainPem, keyPem: serverCert.keyPem, ca,
        agents: ctx.agents, operators: new OperatorStore(db), bundles: ctx.bundles, store: ctx.registry, log: log.child({ part: 'registry' }), metrics,
      });
      opened.push(() => registry!.stop());
    }

    const adminServer = await serveAdminSocket(ctx, health, opened);

    // The web console: its own HTTPS listener for people, off unless --console-addr is given.
    let consoleServer: ConsoleServer | undefined;
    if (config.consoleAddr) {
      consoleServer = await ConsoleServer.start(ctx, {
        addr: config.consoleAddr, certPem: serverCert.certChainPem, keyPem: serverCert.keyPem,
        sessionTtlMs: config.consoleSessionTtlMs, log: log.child({ part: 'console' }),
      });
      opened.push(() => consoleServer!.stop());
      ctx.consoleUrl = () => consoleServer!.url;
    }

    // Ready means: the store answers and the gRPC port is serving (not starting, not draining).
    let running: () => boolean = () => false;
    const ops = config.httpAddr === undefined ? undefined : await OpsHttp.start({
      addr: config.httpAddr, log: log.child({ part: 'http' }), scrape: () => metrics.scrape(),
      ready: {
        store: async () => { await db.get('SELECT 1 AS ok'); return undefined; },
        grpc: async () => (running() ? undefined : 'the gRPC listener is not serving (the controller is starting or stopping)'),
      },
    });
    if (ops) opened.push(() => ops.stop());

    // The replica row: written now (join strings made from here on list this replica) and on the lease interval.
    const beat = () => replicas.beat(ownAddresses(), sessions.size).catch((err: Error) => log.warn({ err: err.message }, 'replica heartbeat failed'));
    await beat();
    const beater = setInterval(() => void beat(), leadership.intervalMs);
    opened.push(() => clearInterval(beater));
    const c = new Controller(config, ctx, tlsServer, adminServer, health, lock, leadership, replicas, beater, mailbox, presence, replicaId, port,
      registry, created, ops, metrics, consoleServer);
    running = () => c.state === 'running';
    if (control !== db) c.closeControl = () => control.close();
    health.set(Serving.SERVING);
    c.state = 'running';
    log.info({ listen: config.listen, port, registryPort: registry?.port, adminSocket: config.adminSocket, pin: ca.pin, replica: replicaId, store: config.store.display,
      scheduler: leadership.isLeader(), http: ops ? `${config.httpAddr!.replace(/:\d+$/, '')}:${ops.port}` : 'off' }, 'controller running');
    const malloc = missingMallocEnv();
    if (malloc.length > 0) log.info({ missing: malloc }, 'started without the glibc malloc settings for serving chunks (README: "Start the controller with the glibc malloc settings"); ferry controller install-service sets them');
    return c;
  }

  /** Drains sessions and stops both servers (forced after `deadlineMs`), then hands over the lease and closes the store (again within `deadlineMs`). */
  async stop(deadlineMs = 10_000): Promise<void> {
    if (this.state === 'stopped' || this.state === 'draining') return;
    this.state = 'draining';
    this.health.set(Serving.NOT_SERVING);
    this.health.endWatches();
    this.ctx.sessions.closeAll('controller shutting down');
    const graceful = Promise.all([this.tlsServer, this.adminServer].map((s) =>
      new Promise<void>((resolve) => s.tryShutdown(() => resolve()))));
    // Every step below is bounded: the servers by the deadline, what comes
    // after them by a second one, so the lease is still handed over when
    // calls used the first. A stuck step is named in the log and left
    // behind, never allowed to hold the stop (at most twice `deadlineMs`, plus a second a step).
    let until = Date.now() + deadlineMs;
    const late: string[] = [];
    // A step after one that used the whole budget still gets a second: closing a listener or a pool is quick when nothing holds it.
    const step = async (name: string, work: Promise<unknown> | undefined) => {
      if (!(await untilDeadline(work, Math.max(until, Date.now() + 1_000)))) late.push(name);
    };
    // Pulls in flight are cut: containerd and skopeo resume or retry them.
    await step('registry', this.registry?.stop());
    if (!(await untilDeadline(graceful, until))) {
      this.ctx.log.warn({ deadlineMs }, 'shutdown deadline passed; closing remaining calls');
      this.tlsServer.forceShutdown();
      this.adminServer.forceShutdown();
    }
    until = Date.now() + deadlineMs;
    await step('console', this.console_?.stop());
    clearInterval(this.beater);
    // The store's part of stopping (hand over the lease, clear presence)
    // must not hold the process either: a statement stuck behind another
    // replica's lock would. What is left undone expires by itself (the
    // lease after its ttl, presence when the agents reconnect).
    await step('store hand-over', (async () => {
      await this.mailbox?.stop();
      await this.leadership.stop();
      await this.presence?.stop();
      await this.replicas.remove().catch(() => undefined);
    })());
    await step('operations listener', this.ops?.stop());
    await step('store', Promise.all([this.ctx.db.close(), this.closeControl()]));
    this.ctx.bundles.served.close(); // chunk files held open for serving
    if (late.length > 0) this.ctx.log.warn({ deadlineMs, steps: late }, 'shutdown steps did not finish before the deadline; left to end by themselves');
    try {
      unlinkSync(this.config.adminSocket);
    } catch {
      // already gone
    }
    this.lock.release(); // last: the directory is free only once everything in it is closed
    this.state = 'stopped';
    this.ctx.log.info('controller stopped');
  }
}
