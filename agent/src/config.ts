import { parseByteSize } from '../../common/src/byte-size.js';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LayeredSettings, type RawValue } from '../../common/src/config-layers.js';
import { parseDuration } from '../../common/src/duration.js';
import { ErrorCode, FerryError } from '../../common/src/errors.js';

/**
 * The agent's settings, read once at the start of every `ferry-agent`
 * command: defaults < `--config FILE` (YAML, keys named like the flags) <
 * `FERRY_AGENT_*` environment < flags, validated together so that every
 * problem is reported in one error. A command uses the settings it needs;
 * flags are accepted only by the commands they concern.
 *
 * | setting   | flag          | environment            | default                                       |
 * |-----------|---------------|------------------------|-----------------------------------------------|
 * | state     | --state DIR   | FERRY_AGENT_STATE      | /var/lib/ferry-agent (root), else ~/.local/state/ferry-agent |
 * | log-level | --log-level   | FERRY_AGENT_LOG_LEVEL  | info                                          |
 * | bandwidth | --bandwidth   | FERRY_AGENT_BANDWIDTH  | unlimited (bytes per second: 512K, 2M, 1G)    |
 * | root      | --root DIR    | FERRY_AGENT_ROOT       | / (steps write files under DIR instead)       |
 * | hostname  | --hostname    | FERRY_AGENT_HOSTNAME   | the kernel's host name (used by join)         |
 * | upgrade-window | --window | FERRY_AGENT_UPGRADE_WINDOW | 2m: how long a new version has to reconnect after a self-upgrade |
 */
export interface AgentConfig {
  /** Absolute path of the state directory (identity, key, jobs, caches). */
  stateDir: string;
  logLevel: string;
  /** Cap on bundle downloads in bytes per second; 0 is no cap. */
  bandwidthBytesPerSec: number;
  /** Directory steps treat as `/` for the files they write; undefined is the real `/`. */
  root?: string;
  /** The name this host has in the fleet when its kernel host name is not unique. */
  hostname?: string;
  /** How long a new version has to reconnect and pass its self-check after a self-upgrade (the controller may set it per upgrade). */
  upgradeWindowMs: number;
}

export type AgentSetting = 'state' | 'log-level' | 'bandwidth' | 'root' | 'hostname' | 'upgrade-window';

/** Raw settings as strings, the common form of file, environment and flags. */
export type AgentRawConfig = Partial<Record<AgentSetting, RawValue | undefined>>;

const ENV: Record<AgentSetting, string> = {
  state: 'FERRY_AGENT_STATE', 'log-level': 'FERRY_AGENT_LOG_LEVEL', bandwidth: 'FERRY_AGENT_BANDWIDTH',
  root: 'FERRY_AGENT_ROOT', hostname: 'FERRY_AGENT_HOSTNAME', 'upgrade-window': 'FERRY_AGENT_UPGRADE_WINDOW',
};

/** Default state directory: /var/lib/ferry-agent for root, ~/.local/state/ferry-agent otherwise. */
export function defaultStateDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/ferry-agent';
  return join(process.env['HOME'] ?? '.', '.local/state/ferry-agent');
}

/** Builds the agent's configuration from its layers and validates it once. */
export function loadAgentConfig(flags: AgentRawConfig, configFile?: string, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const s = new LayeredSettings(ENV, flags, configFile, env);
  const cfg: AgentConfig = {
    stateDir: resolve(s.str('state', defaultStateDir())),
    logLevel: s.logLevel('log-level'),
    bandwidthBytesPerSec: s.parse('bandwidth', undefined, parseRate) ?? 0,
    root: s.parse('root', undefined, targetRoot),
    hostname: s.parse('hostname', undefined, checkHostname),
    upgradeWindowMs: s.parse('upgrade-window', undefined, (t) => upgradeWindow(t)) ?? 2 * 60_000,
  };
  s.check('agent');
  return cfg;
}

/** "2M", "500K", "1.5G" or plain bytes → bytes per second (binary units). */
export function parseRate(text: string): number {
  return parseByteSize(text, '--bandwidth', { rate: true });
}

/**
 * `root`: the directory steps treat as `/` for the files they write (like
 * `dpkg --root`), to try a plan without touching this machine or to prepare
 * a mounted image. Commands (exec, assert, systemctl, ctr) still run on this
 * host. It must exist.
 */
function targetRoot(dir: string): string | undefined {
  if (dir === '' || dir === '/') return undefined;
  const abs = resolve(dir);
  let ok = false;
  try { ok = statSync(abs).isDirectory(); } catch { /* reported below */ }
  if (!ok) throw new FerryError(ErrorCode.InvalidArgument, `--root ${dir}: no such directory (create it, or leave --root out to work on this machine's /)`);
  return abs;
}

/** `upgrade-window`: a duration between 5 s and 1 h (shorter cannot fit a restart; longer leaves a broken agent in place too long). */
function upgradeWindow(text: string): number {
  const ms = parseDuration(text, 'upgrade-window');
  if (ms < 5_000 || ms > 3_600_000) throw new FerryError(ErrorCode.InvalidArgument, `upgrade-window ${text}: must be between 5s and 1h`);
  return ms;
}

/** What the fleet calls this host when its kernel name is not unique (cloned images). */
function checkHostname(name: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(name)) {
    throw new FerryError(ErrorCode.InvalidArgument, `--hostname "${name}" is not a host name (use letters, digits, dots and dashes, like edge-07.plant-7)`);
  }
  return name;
}
