import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../../common/src/duration.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';

/** The controller's settings after layering and validation. */
export interface ControllerConfig {
  dataDir: string;
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
  logLevel: string;
}

/** Raw settings as strings, the common form of file, environment and flags. */
export type RawConfig = Partial<Record<'data' | 'listen' | 'san' | 'advertise' | 'admin-socket' | 'heartbeat' | 'agent-cert-ttl' | 'agent-reauth-window' | 'log-level', string | string[]>>;

const ENV: Record<keyof RawConfig & string, string> = {
  data: 'FERRY_DATA', listen: 'FERRY_LISTEN', san: 'FERRY_SAN', advertise: 'FERRY_ADVERTISE',
  'admin-socket': 'FERRY_ADMIN_SOCKET', heartbeat: 'FERRY_HEARTBEAT', 'agent-cert-ttl': 'FERRY_AGENT_CERT_TTL',
  'agent-reauth-window': 'FERRY_AGENT_REAUTH_WINDOW',
  'log-level': 'FERRY_LOG_LEVEL',
};

/** Default data directory: /var/lib/ferry for root, ~/.local/share/ferry otherwise. */
export function defaultDataDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/ferry';
  return join(process.env['HOME'] ?? '.', '.local/share/ferry');
}

function list(v: string | string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean);
}

/**
 * Builds the configuration from defaults < config file < environment < flags
 * and validates it once, reporting every problem in one error.
 */
export function loadControllerConfig(flags: RawConfig, configFile?: string, env: NodeJS.ProcessEnv = process.env): ControllerConfig {
  const problems: string[] = [];
  let file: RawConfig = {};
  if (configFile) {
    try {
      const parsed = parseYaml(readFileSync(configFile, 'utf8')) as unknown;
      if (parsed && typeof parsed === 'object') file = parsed as RawConfig;
      else problems.push(`${configFile}: expected a mapping of settings`);
    } catch (err) {
      problems.push(`${configFile}: ${(err as Error).message}`);
    }
    for (const k of Object.keys(file)) if (!(k in ENV)) problems.push(`${configFile}: unknown setting "${k}"`);
  }
  const fromEnv: RawConfig = {};
  for (const [k, name] of Object.entries(ENV)) if (env[name] !== undefined) fromEnv[k as keyof RawConfig] = env[name];
  const raw: RawConfig = { ...file, ...fromEnv, ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0))) };

  const str = (k: keyof RawConfig, def: string): string => {
    const v = raw[k];
    return v === undefined ? def : Array.isArray(v) ? v[v.length - 1]! : v;
  };
  const dur = (k: keyof RawConfig, def: string): number => {
    try {
      return parseDuration(str(k, def), k);
    } catch (err) {
      problems.push((err as FerryError).message);
      return 0;
    }
  };

  const dataDir = resolve(str('data', defaultDataDir()));
  const listen = str('listen', '0.0.0.0:7443');
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) problems.push(`listen "${listen}" is not host:port`);
  const listenHost = m?.[1] ?? '0.0.0.0';
  const wildcard = listenHost === '0.0.0.0' || listenHost === '[::]';
  const sans = list(raw.san) ?? [];
  for (const n of ['localhost', '127.0.0.1', hostname(), ...(wildcard ? [] : [listenHost.replace(/^\[|\]$/g, '')])]) {
    if (!sans.includes(n)) sans.push(n);
  }
  const advertise = list(raw.advertise) ?? [];
  for (const a of advertise) if (!/^.+:\d{1,5}$/.test(a)) problems.push(`advertise "${a}" is not host:port`);

  const cfg: ControllerConfig = {
    dataDir,
    listen,
    sans,
    advertise,
    adminSocket: resolve(str('admin-socket', join(dataDir, 'admin.sock'))),
    heartbeatIntervalMs: dur('heartbeat', '15s'),
    agentCertTtlMs: dur('agent-cert-ttl', '72h'),
    agentReauthWindowMs: dur('agent-reauth-window', '180d'),
    logLevel: str('log-level', 'info'),
  };
  if (cfg.heartbeatIntervalMs && cfg.heartbeatIntervalMs < 100) problems.push('heartbeat must be at least 100ms');
  if (cfg.agentCertTtlMs && cfg.agentCertTtlMs < 10_000) problems.push('agent-cert-ttl must be at least 10s');
  if (cfg.agentReauthWindowMs && cfg.agentCertTtlMs && cfg.agentReauthWindowMs < cfg.agentCertTtlMs) {
    problems.push('agent-reauth-window must be at least agent-cert-ttl (an agent off for one certificate life must come back by itself)');
  }
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(cfg.logLevel)) {
    problems.push(`log-level "${cfg.logLevel}" is not one of trace, debug, info, warn, error, fatal, silent`);
  }
  if (problems.length > 0) {
    throw new FerryError(ErrorCode.Config, `invalid controller configuration:\n  - ${problems.join('\n  - ')}`,
      'fix the settings above (flags override FERRY_* environment variables, which override the --config file)');
  }
  return cfg;
}
