import { Exit } from '../../../common/src/exit-codes.js';
import { MALLOC_ENV } from '../../../common/src/malloc-env.js';
import {
  installUnit, quoteExecArg, stopUnit, systemHost, uninstallUnit, type ServiceHost, type ServiceProgram,
} from '../../../common/src/service/systemd-service.js';

export { unitPath, type ServiceHost } from '../../../common/src/service/systemd-service.js';

export interface UnitOptions {
  /** argv that starts the agent: the single binary, or node + script in development. */
  command: string[];
  stateDir: string;
  /** The settings file the service reads (`install-service --config`), absolute. */
  configFile?: string;
  unitDir: string;
  name: string;
}

const AGENT: ServiceProgram = {
  cli: 'ferry-agent',
  withoutSystemd: 'on a host without systemd, start the agent under your init system with `ferry-agent run`',
};

/**
 * The unit for `ferry-agent run`. It restarts on any failure except the
 * exit codes that mean retrying is pointless (not enrolled, revoked), so a
 * revoked host does not hammer the controller.
 */
export function renderUnit(o: UnitOptions): string {
  return [
    '[Unit]',
    'Description=Ferry agent (fleet install and upgrade)',
    'Documentation=man:ferry-agent(1)',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[...o.command, 'run', '--state', o.stateDir, ...(o.configFile ? ['--config', o.configFile] : [])].map(quoteExecArg).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=5s',
    `RestartPreventExitStatus=${Exit.NotEnrolled} ${Exit.Revoked}`,
    // The single binary is node inside: NODE_OPTIONS from the host must not change it.
    'UnsetEnvironment=NODE_OPTIONS',
    // glibc reads these once at start: chunk-sized buffers reused from the heap instead of mmap + zeroed pages per chunk (common/src/malloc-env.ts).
    ...Object.entries(MALLOC_ENV).map(([k, v]) => `Environment=${k}=${v}`),
    'KillMode=mixed',
    'TimeoutStopSec=15s',
    'StateDirectoryMode=0700',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/**
 * Checks the host (root; systemd unless `start` is false), writes the unit,
 * reloads systemd and (unless `start` is false) enables and starts it.
 */
export function installService(o: UnitOptions, start: boolean, host: ServiceHost = systemHost): Promise<string> {
  return installUnit(AGENT, { unitDir: o.unitDir, name: o.name, text: renderUnit(o) }, start, host);
}

/** Stops the service if its unit is installed (for `reset`). Returns whether there was a unit to stop. */
export function stopService(unitDir: string, name: string, host: ServiceHost = systemHost): Promise<boolean> {
  return stopUnit(AGENT, 'reset', unitDir, name, host);
}

/** Stops, disables and removes the unit, then reloads systemd; with no unit file it changes nothing and returns false. */
export function uninstallService(unitDir: string, name: string, host: ServiceHost = systemHost): Promise<boolean> {
  return uninstallUnit(AGENT, unitDir, name, host);
}
