import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { LayeredSettings, type RawValue } from '../../common/src/config-layers.js';
import { parseStoreUrl, type StoreLocation } from './store/store-url.js';

/** The controller's settings after layering and validation. */
export interface ControllerConfig {
  dataDir: string;
  /** SQLite in the data directory (default), or a PostgreSQL database shared by replicas. */
  store: StoreLocation;
  /** TLS listen address for agents and remote operators, host:port (port 0 picks one). */
  listen: string;
  /** Names and addresses put in the server certificate. */
  sans: string[];
  /** Addresses written into join strings; defaults to the listen address (with a real host for 0.0.0.0). */
  advertise: string[];
  adminSocket: string;
  heartbeatIntervalMs: number;
  agentCertTtlMs: number;
  /** An agent unseen for longer than this cannot re-authenticate until an operator allows it. */
  agentReauthWindowMs: number;
  /** Finished exec and plan runs older than this leave the job history. */
  jobRetentionMs: number;
  /** The scheduler lease: a dead holder's singleton work moves to another replica at most about this long after its last renewal. */
  leaseTtlMs: number;
  logLevel: string;
}

/** Raw settings as strings, the common form of file, environment and flags. */
export type RawConfig = Partial<Record<'data' | 'store' | 'listen' | 'san' | 'advertise' | 'admin-socket' | 'heartbeat' | 'agent-cert-ttl' | 'agent-reauth-window' | 'job-retention' | 'lease-ttl' | 'log-level', RawValue>>;

const ENV: Record<keyof RawConfig, string> = {
  data: 'FERRY_DATA', store: 'FERRY_STORE', listen: 'FERRY_LISTEN', san: 'FERRY_SAN', advertise: 'FERRY_ADVERTISE',
  'admin-socket': 'FERRY_ADMIN_SOCKET', heartbeat: 'FERRY_HEARTBEAT', 'agent-cert-ttl': 'FERRY_AGENT_CERT_TTL',
  'agent-reauth-window': 'FERRY_AGENT_REAUTH_WINDOW', 'job-retention': 'FERRY_JOB_RETENTION', 'lease-ttl': 'FERRY_LEASE_TTL',
  'log-level': 'FERRY_LOG_LEVEL',
};

/** Default data directory: /var/lib/ferry for root, ~/.local/share/ferry otherwise. */
export function defaultDataDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/ferry';
  return join(process.env['HOME'] ?? '.', '.local/share/ferry');
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
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) s.problems.push(`listen "${listen}" is not host:port`);
  const listenHost = m?.[1] ?? '0.0.0.0';
  const wildcard = listenHost === '0.0.0.0' || listenHost === '[::]';
  const sans = s.list('san') ?? [];
  for (const n of ['localhost', '127.0.0.1', hostname(), ...(wildcard ? [] : [listenHost.replace(/^\[|\]$/g, '')])]) {
    if (!sans.includes(n)) sans.push(n);
  }
  const advertise = s.list('advertise') ?? [];
  for (const a of advertise) if (!/^.+:\d{1,5}$/.test(a)) s.problems.push(`advertise "${a}" is not host:port`);

  const cfg: ControllerConfig = {
    dataDir,
    store: parsed.store ?? { kind: 'sqlite', display: 'sqlite' },
    listen,
    sans,
    advertise,
    adminSocket: resolve(s.str('admin-socket', join(dataDir, 'admin.sock'))),
    heartbeatIntervalMs: s.duration('heartbeat', '15s'),
    agentCertTtlMs: s.duration('agent-cert-ttl', '72h'),
    agentReauthWindowMs: s.duration('agent-reauth-window', '180d'),
    jobRetentionMs: s.duration('job-retention', '30d'),
    leaseTtlMs: s.duration('lease-ttl', '10s'),
    logLevel: s.logLevel('log-level'),
  };
  if (cfg.heartbeatIntervalMs && cfg.heartbeatIntervalMs < 100) s.problems.push('heartbeat must be at least 100ms');
  if (cfg.agentCertTtlMs && cfg.agentCertTtlMs < 10_000) s.problems.push('agent-cert-ttl must be at least 10s');
  if (cfg.agentReauthWindowMs && cfg.agentCertTtlMs && cfg.agentReauthWindowMs < cfg.agentCertTtlMs) {
    s.problems.push('agent-reauth-window must be at least agent-cert-ttl (an agent off for one certificate life must come back by itself)');
  }
  if (cfg.leaseTtlMs && (cfg.leaseTtlMs < 500 || cfg.leaseTtlMs > 300_000)) s.problems.push('lease-ttl must be between 500ms and 5m');
  if (cfg.jobRetentionMs && cfg.jobRetentionMs < 3_600_000) s.problems.push('job-retention must be at least 1h');
  s.check('controller');
  return cfg;
}
