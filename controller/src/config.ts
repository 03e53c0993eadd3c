import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { LayeredSettings, type RawValue } from '../../common/src/config-layers.js';
import { parseStoreUrl, type StoreLocation } from './store/store-url.js';
import { parseHostPort } from '../../common/src/host-port.js';

/** The controller's settings after layering and validation. */
export interface ControllerConfig {
  dataDir: string;
  /** SQLite in the data directory (default), or a PostgreSQL database shared by replicas. */
  store: StoreLocation;
  /**
   * The chunk store (bundle bytes): DATA/chunks by default; replicas on one
   * PostgreSQL store give each the same directory on shared storage (docs/ha.md).
   */
  chunkDir: string;
  /** TLS listen address for agents and remote operators, host:port (port 0 picks one). */
  listen: string;
  /** HTTPS listener for the registry and files repository (docs/registry.md), host:port; '' = off. */
  registryAddr: string;
  /** Names and addresses put in the server certificate. */
  sans: string[];
  /** Addresses written into join strings; defaults to the listen address (with a real host for 0.0.0.0). */
  advertise: string[];
  adminSocket: string;
  /**
   * Plain-HTTP operations listener (/metrics, /healthz, /readyz), host:port,
   * or undefined when turned off (`--http-addr off`).
   */
  httpAddr: string | undefined;
  heartbeatIntervalMs: number;
  agentCertTtlMs: number;
  /** An agent unseen for longer than this cannot re-authenticate until an operator allows it. */
  agentReauthWindowMs: number;
  /** Finished exec and plan runs older than this leave the job history. */
  jobRetentionMs: number;
  /** The scheduler lease: a dead holder's singleton work moves to another replica at most about this long after its last renewal. */
  leaseTtlMs: number;
  logLevel: string;
  /** HTTPS address of the web console, host:port; '' when it is off (the default). */
  consoleAddr: string;
  /** How long a console browser session lasts after its login link is opened. */
  consoleSessionTtlMs: number;
}

/** Raw settings as strings, the common form of file, environment and flags. */
export type RawConfig = Partial<Record<'data' | 'store' | 'chunks' | 'listen' | 'registry-addr' | 'san' | 'advertise' | 'admin-socket' | 'http-addr' | 'heartbeat' | 'agent-cert-ttl' | 'agent-reauth-window' | 'job-retention' | 'lease-ttl' | 'log-level' | 'console-addr' | 'console-session-ttl', RawValue>>;

const ENV: Record<keyof RawConfig, string> = {
  data: 'FERRY_DATA', store: 'FERRY_STORE', chunks: 'FERRY_CHUNKS', listen: 'FERRY_LISTEN', 'registry-addr': 'FERRY_REGISTRY_ADDR', san: 'FERRY_SAN', advertise: 'FERRY_ADVERTISE',
  'admin-socket': 'FERRY_ADMIN_SOCKET', 'http-addr': 'FERRY_HTTP_ADDR', heartbeat: 'FERRY_HEARTBEAT', 'agent-cert-ttl': 'FERRY_AGENT_CERT_TTL',
  'agent-reauth-window': 'FERRY_AGENT_REAUTH_WINDOW', 'job-retention': 'FERRY_JOB_RETENTION', 'lease-ttl': 'FERRY_LEASE_TTL',
  'log-level': 'FERRY_LOG_LEVEL', 'console-addr': 'FERRY_CONSOLE_ADDR', 'console-session-ttl': 'FERRY_CONSOLE_SESSION_TTL',
};

/** Default data directory: /var/lib/ferry for root, ~/.local/share/ferry otherwise. */
export function defaultDataDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/ferry';
  return join(process.env['HOME'] ?? '.', '.local/share/ferry');
}

/**
 * The operations listener's address. Default: loopback, on the port after
 * the gRPC port (7444 beside the default 7443; port 0 when --listen picks
 * its port, as in tests). Loopback because the listener is plain HTTP
 * without authentication: the fleet's shape (agent counts, versions of
 * calls) stays off the network until the operator opens it on purpose
 * (`--http-addr 0.0.0.0:7444` for a remote Prometheus or a load balancer's
 * /readyz). The port follows --listen so two controllers on one machine
 * (different --listen ports) do not collide by default.
 */
function operationsAddr(given: string, listenPort: string | undefined, problems: string[]): string | undefined {
  if (given === 'off') return undefined;
  if (given === '') {
    const p = Number(listenPort ?? 7443);
    if (p === 65535) {
      problems.push('http-addr: the default port (the --listen port + 1) would be 65536; give --http-addr host:port, or --http-addr off');
      return undefined;
    }
    return `127.0.0.1:${p === 0 ? 0 : p + 1}`;
  }
  if (!parseHostPort(given)) problems.push(`http-addr "${given}" is not host:port (or "off")`);
  return given;
}

/**
 * Builds the configuration from defaults < config file < environment < flags
 * and validates it once, reporting every problem in one error.
 */
export function loadControllerConfig(flags: RawConfig, configFile?: string, env: NodeJS.ProcessEnv = process.env): ControllerConfig {
  const s = new LayeredSettings(ENV, flags, configFile, env);
  const dataDir = resolve(s.str('data', defaultDataDir()));
  const parsed = parseStoreUrl(s.str('store', 'sqlite'));
  if (parsed.problem) s.problems.push(parsed.problem);
  const listen = s.str('listen', '0.0.0.0:7443');
  const lp = parseHostPort(listen);
  if (!lp) s.problems.push(`listen "${listen}" is not host:port`);
  const listenHost = lp?.host ?? '0.0.0.0';
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::';
  const registryAddr = s.str('registry-addr', '');
  if (registryAddr !== '' && !parseHostPort(registryAddr)) s.problems.push(`registry-addr "${registryAddr}" is not host:port`);
  const sans = s.list('san') ?? [];
  for (const n of ['localhost', '127.0.0.1', hostname(), ...(wildcard ? [] : [listenHost])]) {
    if (!sans.includes(n)) sans.push(n);
  }
  const consoleAddr = s.str('console-addr', '');
  if (consoleAddr && !parseHostPort(consoleAddr)) s.problems.push(`console-addr "${consoleAddr}" is not host:port`);
  const advertise = s.list('advertise') ?? [];
  for (const a of advertise) if (!/^.+:\d{1,5}$/.test(a)) s.problems.push(`advertise "${a}" is not host:port`);

  const httpAddr = operationsAddr(s.str('http-addr', ''), lp === undefined ? undefined : String(lp.port), s.problems);

  const cfg: ControllerConfig = {
    dataDir,
    store: parsed.store ?? { kind: 'sqlite', display: 'sqlite' },
    chunkDir: resolve(s.str('chunks', join(dataDir, 'chunks'))),
    listen,
    registryAddr,
    sans,
    advertise,
    adminSocket: resolve(s.str('admin-socket', join(dataDir, 'admin.sock'))),
    httpAddr,
    heartbeatIntervalMs: s.duration('heartbeat', '15s'),
    agentCertTtlMs: s.duration('agent-cert-ttl', '72h'),
    agentReauthWindowMs: s.duration('agent-reauth-window', '180d'),
    jobRetentionMs: s.duration('job-retention', '30d'),
    leaseTtlMs: s.duration('lease-ttl', '10s'),
    logLevel: s.logLevel('log-level'),
    consoleAddr,
    consoleSessionTtlMs: s.duration('console-session-ttl', '8h'),
  };
  if (cfg.heartbeatIntervalMs && cfg.heartbeatIntervalMs < 100) s.problems.push('heartbeat must be at least 100ms');
  if (cfg.agentCertTtlMs && cfg.agentCertTtlMs < 10_000) s.problems.push('agent-cert-ttl must be at least 10s');
  if (cfg.agentReauthWindowMs && cfg.agentCertTtlMs && cfg.agentReauthWindowMs < cfg.agentCertTtlMs) {
    s.problems.push('agent-reauth-window must be at least agent-cert-ttl (an agent off for one certificate life must come back by itself)');
  }
  if (cfg.consoleSessionTtlMs && (cfg.consoleSessionTtlMs < 60_000 || cfg.consoleSessionTtlMs > 7 * 86_400_000)) {
    s.problems.push('console-session-ttl must be between 1m and 7d');
  }
  if (cfg.leaseTtlMs && (cfg.leaseTtlMs < 500 || cfg.leaseTtlMs > 300_000)) s.problems.push('lease-ttl must be between 500ms and 5m');
  if (cfg.jobRetentionMs && cfg.jobRetentionMs < 3_600_000) s.problems.push('job-retention must be at least 1h');
  s.check('controller');
  return cfg;
}
