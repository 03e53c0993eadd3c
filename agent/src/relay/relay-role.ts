/**
 * This agent as a site relay (docs/relays.md): started, changed and stopped
 * by the RelayRole the controller sends over the session. It keeps its own
 * key in STATE/relay/server.key (made here, 0600, never sent), asks the
 * controller for a relay certificate over the session (again when a third
 * of its life is left), serves Chunks.Fetch from its cache, and reports its
 * address and counters every few seconds while connected.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentMessage, RelayCertResponse, RelayPins, RelayRole as RelayRoleMsg, RelayStatus, RelayWarmReport } from '../../../common/src/gen/ferry/v1/session.js';
import { asFerryError } from '../../../common/src/errors.js';
import type { Logger } from '../../../common/src/log.js';
import { certIdentity, createCsr, exportPrivateKeyPem, generateKeyPair, keyPairFromPem } from '../../../common/src/pki.js';
import { ensurePrivateDir, writeFileAtomic } from '../../../common/src/secure-fs.js';
import type { ChunkSource } from '../bundles/chunk-source.js';
import { renewalDue } from '../session/cert-renewal.js';
import type { AgentState } from '../state/agent-state.js';
import { RelayCache } from './relay-cache.js';
import { RelayServer } from './relay-server.js';
import { RelayRegistryServer } from './relay-registry.js';
import type { ResolveHttpRequest, ResolveHttpResponse } from '../../../common/src/gen/ferry/v1/chunks.js';

/** Options of {@link RelayRole}. */
export interface RelayRoleOptions {
  state: AgentState;
  log: Logger;
  /** Sends on the session if connected (dropped otherwise; the role is sent again on every hello). */
  sendNow: (m: AgentMessage) => void;
  /** A fresh source for the relay's upstream (the controller, with this agent's identity). */
  upstream: () => ChunkSource & { close(): void };
  /** How often counters are reported while serving (default 5 s). */
  statusEveryMs?: number;
  /** The agent's bandwidth cap, applied to the relay's upstream fetches (0: none). */
  upstreamBytesPerSec?: number;
  /** Chunks.ResolveHttp on the controller, for the registry and files endpoints (relay-registry.ts). */
  resolveHttp?: (req: ResolveHttpRequest) => Promise<ResolveHttpResponse>;
}

/** See module comment. */
export class RelayRole {
  private role: RelayRoleMsg | undefined;
  private revoked: ReadonlySet<string> = new Set();
  private cache: RelayCache | undefined;
  private server: { s: RelayServer; listen: string; advertise: string; certPem: string } | undefined;
  /** The registry and files listener, when the role asks for one (RelayRole.registry_listen). */
  private registry: { s: RelayRegistryServer; listen: string; certPem: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private certRequested = false;
  private lastError = '';
  private lastSent = '';
  /** The controller's last pin set, applied when the cache opens if it came first. */
  private pins = new Map<string, readonly string[]>();
  /** Warm-ups running now, by bundle id: a repeated ask (a rollout's prefetch asks per host) joins the running one and gets its own answer. */
  private readonly warming = new Map<string, Promise<RelayWarmReport>>();

  constructor(private readonly o: RelayRoleOptions) {}

  private get dir(): string { return join(this.o.state.dir, 'relay'); }
  private get keyPath(): string { return join(this.dir, 'server.key'); }
  private get certPath(): string { return join(this.dir, 'server.crt'); }

  /** The address it serves on, while it does (tests, status). */
  get address(): string | undefined {
    return this.server?.s.address;
  }

  /** host:port of the registry and files endpoints while they are served (tests, status). */
  get registryAddress(): string | undefined {
    const r = this.registry;
    return r && `${advertisedHost(r.listen, this.server?.s.address)}:${r.s.port}`;
  }

  /** The registry listener while it serves (tests). */
  get registryForTests(): RelayRegistryServer | undefined {
    return this.registry?.s;
  }

  /** The cache, once the role was applied (tests, status). */
  get cacheForTests(): RelayCache | undefined {
    return this.cache;
  }

  /** This host's own cache as a chunk source while it serves as a relay (its own stages use it first), else undefined. */
  localLink(): { source: ChunkSource; recheck(digests: string[]): Promise<void> } | undefined {
    const cache = this.cache;
    if (!this.role || !this.server || !cache) return undefined;
    return { source: cache.localSource(), recheck: async (ds) => { for (const d of ds) await cache.recheck(d); } };
  }

  /** The controller's word (RelayConfig.role): serve with these settings, or (undefined) stop. */
  apply(role: RelayRoleMsg | undefined): Promise<void> {
    return this.serial(async () => {
      this.role = role;
      this.revoked = new Set(role?.revokedAgentIds ?? []);
      if (!role) {
        if (this.server) this.o.log.info({ address: this.server.s.address }, 'relay role withdrawn; no longer serving chunks');
        this.stopServer();
        return;
      }
      try {
        if (!this.cache) {
          this.cache = await RelayCache.open(join(this.dir, 'cache'), Number(role.cacheBytes), this.o.upstream, this.o.log.child({ part: 'relay-cache' }), this.o.upstreamBytesPerSec ?? 0);
          this.cache.setPins(this.pins);
        } else await this.cache.resize(Number(role.cacheBytes));
        await this.ensureServing();
      } catch (e) {
        this.fail(e);
      }
      this.report(true);
    });
  }

  /**
   * The controller's pin set (replaces the last) and the bundles to warm
   * now: each warm-up is answered with a RelayWarmReport, also when this
   * host cannot serve (then with the reason), so the controller never
   * waits on a relay that will not warm.
   */
  onPins(m: RelayPins): Promise<void> {
    return this.serial(async () => {
      this.pins = new Map(m.pins.map((p) => [p.bundleId, p.digests]));
      this.cache?.setPins(this.pins);
      for (const id of m.warmBundleIds) {
        const running = this.warming.get(id);
        if (running) {
          void running.then((value) => this.o.sendNow({ msg: { $case: 'relayWarm', value } }));
          continue;
        }
        const digests = this.pins.get(id);
        const cache = this.cache;
        const why = !this.role || !this.server || !cache ? `this host is not serving as a relay${this.lastError ? `: ${this.lastError}` : ''}` : !digests ? 'the bundle to warm is not pinned' : '';
        if (why) {
          this.o.sendNow({ msg: { $case: 'relayWarm', value: { bundleId: id, error: why, bytesFromUpstream: 0 } } });
          continue;
        }
        // Not inside serial(): a long warm-up must not hold up role changes or certificates.
        const warm = cache!.warm(digests!).then(
          (bytes): RelayWarmReport => ({ bundleId: id, error: '', bytesFromUpstream: bytes }),
          (e: unknown): RelayWarmReport => ({ bundleId: id, error: asFerryError(e).message, bytesFromUpstream: 0 }),
        );
        this.warming.set(id, warm);
        void warm.then((value) => {
          this.warming.delete(id);
          this.o.log.info({ bundleId: id, error: value.error || undefined, bytesFromUpstream: value.bytesFromUpstream }, 'relay warmed a bundle for a prefetch');
          this.o.sendNow({ msg: { $case: 'relayWarm', value } });
        });
      }
    });
  }

  /** The controller's answer to a certificate request. */
  onCert(resp: RelayCertResponse): Promise<void> {
    return this.serial(async () => {
      this.certRequested = false;
      if (resp.error || !resp.certPem) {
        this.fail(new Error(resp.error || 'the controller sent no relay certificate'));
        this.report(true);
        return;
      }
      writeFileAtomic(this.certPath, resp.certPem, 0o600);
      this.o.log.info({ notAfter: new X509Certificate(resp.certPem).validTo }, 'relay certificate received');
      try {
        if (this.role) await this.ensureServing();
      } catch (e) {
        this.fail(e);
      }
      this.report(true);
    });
  }

  /** Stops serving (the agent stops, or was revoked). The cache stays on disk for the next start. */
  stop(): Promise<void> {
    return this.serial(async () => {
      this.role = undefined;
      this.stopServer();
    });
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(fn, fn);
    return this.chain;
  }

  private fail(e: unknown): void {
    const fe = asFerryError(e);
    this.lastError = fe.message;
    this.o.log.error({ code: fe.code, err: fe.message, hint: fe.hint }, 'relay cannot serve');
  }

  /** Starts (or restarts with new settings or a new certificate) the server, asking for a certificate first when needed. */
  private async ensureServing(): Promise<void> {
    const role = this.role!;
    const certPem = this.usableCert();
    if (!certPem) {
      await this.requestCert();
      return;
    }
    const s = this.server;
    if (s && s.listen === role.listen && s.advertise === role.advertise && s.certPem === certPem) {
      await this.ensureRegistry(certPem);
      return;
    }
    this.stopServer();
    const loaded = this.o.state.load();
    const server = await RelayServer.start({
      listen: role.listen, advertise: role.advertise, caPem: loaded.caPem, certPem, keyPem: readFileSync(this.keyPath, 'utf8'),
      cache: this.cache!, revoked: () => this.revoked, log: this.o.log.child({ part: 'relay' }),
    });
    this.server = { s: server, listen: role.listen, advertise: role.advertise, certPem };
    this.lastError = '';
    this.o.log.info({ address: server.address, cacheBytes: Number(role.cacheBytes) }, 'relay serving chunks');
    await this.ensureRegistry(certPem);
    const every = this.o.statusEveryMs ?? 5_000;
    this.timer ??= setInterval(() => void this.serial(async () => this.tick()), every);
    this.timer.unref?.();
  }

  /** Starts, restarts or stops the registry and files listener to match the role (after the chunk server is up). */
  private async ensureRegistry(certPem: string): Promise<void> {
    const want = this.role?.registryListen ?? '';
    const r = this.registry;
    if (r && r.listen === want && r.certPem === certPem) return;
    this.stopRegistry();
    if (!want) return;
    if (!this.o.resolveHttp) throw new Error('this agent cannot ask the controller to resolve registry requests');
    const loaded = this.o.state.load();
    const s = await RelayRegistryServer.start({
      listen: want, caPem: loaded.caPem, certPem, keyPem: readFileSync(this.keyPath, 'utf8'), cache: this.cache!,
      resolve: this.o.resolveHttp, revoked: () => this.revoked, log: this.o.log.child({ part: 'relay-registry' }),
    });
    this.registry = { s, listen: want, certPem };
    this.o.log.info({ address: this.registryAddress }, 'relay serving the registry and files endpoints');
  }

  private stopRegistry(): void {
    void this.registry?.s.stop();
    this.registry = undefined;
  }

  /** Periodic: report changed counters, renew the certificate when a third of its life is left. */
  private async tick(): Promise<void> {
    if (!this.role) return;
    if (this.server && renewalDue(this.server.certPem, Date.now()) && !this.certRequested) await this.requestCert();
    this.report(false);
  }

  /** The stored relay certificate if it matches the key, names this agent with the relay role and is not due for renewal. */
  private usableCert(): string | undefined {
    if (!existsSync(this.certPath) || !existsSync(this.keyPath)) return undefined;
    try {
      const pem = readFileSync(this.certPath, 'utf8');
      const cert = new X509Certificate(pem);
      const { cn, role } = certIdentity(cert);
      if (role !== 'relay' || cn !== this.o.state.load().identity.agentId || renewalDue(pem, Date.now())) return undefined;
      return pem;
    } catch {
      return undefined;
    }
  }

  private async requestCert(): Promise<void> {
    ensurePrivateDir(this.dir);
    if (!existsSync(this.keyPath)) writeFileAtomic(this.keyPath, await exportPrivateKeyPem((await generateKeyPair()).privateKey), 0o600);
    const csrPem = await createCsr(await keyPairFromPem(readFileSync(this.keyPath, 'utf8')), 'ferry-relay');
    this.certRequested = true;
    this.o.sendNow({ msg: { $case: 'relayCertRequest', value: { csrPem } } });
  }

  private stopServer(): void {
    this.stopRegistry();
    this.server?.s.stop();
    this.server = undefined;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Sends the status when it changed (or always with `force`). */
  private report(force: boolean): void {
    if (!this.role) return;
    const st = this.cache?.stats();
    const status: RelayStatus = {
      address: this.server?.s.address ?? '', cacheBytes: Number(this.role.cacheBytes), cacheUsedBytes: st?.usedBytes ?? 0, cacheChunks: st?.chunks ?? 0,
      hits: st?.hits ?? 0, misses: st?.misses ?? 0, bytesFromUpstream: st?.bytesFromUpstream ?? 0, bytesServed: st?.bytesServed ?? 0,
      error: this.server ? '' : this.lastError, upstreamBytesPerSec: st?.upstreamBytesPerSec ?? 0, droppedCorrupt: st?.droppedCorrupt ?? 0,
      registryAddress: this.registryAddress ?? '',
    };
    const text = JSON.stringify(status);
    if (!force && text === this.lastSent) return;
    this.lastSent = text;
    this.o.sendNow({ msg: { $case: 'relayStatus', value: status } });
  }
}

/** The host clients dial for `listen`: its own host, or for a wildcard the chunk server's advertised host. */
function advertisedHost(listen: string, chunkAddress: string | undefined): string {
  const host = listen.replace(/:\d+$/, '');
  if (host !== '0.0.0.0' && host !== '[::]' && host !== '::') return host;
  return chunkAddress ? chunkAddress.replace(/:\d+$/, '') : '127.0.0.1';
}
