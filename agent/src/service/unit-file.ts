import { runProcess } from '../proc/run-process.js';
import { accessSync, constants, existsSync, rmSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { writeFileAtomic } from '../../../common/src/secure-fs.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { MALLOC_ENV } from '../../../common/src/malloc-env.js';

export interface UnitOptions {
  /** argv that starts the agent: the single binary, or node + script in development. */
  command: string[];
  stateDir: string;
  /** The settings file the service reads (`install-service --config`), absolute. */
  configFile?: string;
  unitDir: string;
  name: string;
}

/** Quotes one argument for a systemd ExecStart line. */
function quote(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `"${a.replace(/(["\\])/g, '\\$1')}"`;
}

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
    `ExecStart=${[...o.command, 'run', '--state', o.stateDir, ...(o.configFile ? ['--config', o.configFile] : [])].map(quote).join(' ')}`,
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
 * What installing a service needs from the host, behind one interface so the
 * checks are tested without root or a booted systemd (tests pass a fake; the
 * CLI uses systemHost).
 */
export interface ServiceHost {
  isRoot(): boolean;
  /** Why systemd cannot manage services here, or undefined when it can. */
  systemdProblem(): string | undefined;
  /** Runs `systemctl ARGS`; exit code and output. */
  systemctl(args: string[]): Promise<{ exitCode: number; output: string }>;
}

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => {
    try {
      accessSync(join(d, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The real host: uid 0, systemd booted (as sd_booted(3): /run/systemd/system is a directory), systemctl on PATH. */
export const systemHost: ServiceHost = {
  isRoot: () => process.getuid?.() === 0,
  systemdProblem: () => {
    if (!statSync('/run/systemd/system', { throwIfNoEntry: false })?.isDirectory()) return 'systemd is not running on this host (no /run/systemd/system)';
    if (!onPath('systemctl')) return 'systemctl is not on PATH';
    return undefined;
  },
  systemctl: async (args) => {
    const r = await runProcess({ argv: ['systemctl', ...args], plainLocale: true });
    return { exitCode: r.exitCode ?? -1, output: ((r.startError ?? '') + r.stderr + r.stdout).trim() };
  },
};

/**
 * Refuses, before anything is written, when this host cannot take the
 * service: not root (the unit directory, the state directory and systemctl
 * are root's), or (when systemd must act) systemd not running.
 */
export function checkServiceHost(host: ServiceHost, what: string, needSystemd: boolean): void {
  if (!host.isRoot()) {
    throw new FerryError(ErrorCode.InvalidArgument, `${what} must run as root (it manages a system service)`, `run it again with sudo: sudo ferry-agent ${what}`);
  }
  const problem = needSystemd ? host.systemdProblem() : undefined;
  if (problem) {
    throw new FerryError(ErrorCode.InvalidArgument, `${what}: ${problem}`,
      'on a host without systemd, start the agent under your init system with `ferry-agent run`; to only write the unit (e.g. into an image), pass --no-start --unit-dir DIR');
  }
}

async function systemctlOk(host: ServiceHost, args: string[], hint: string): Promise<void> {
  const r = await host.systemctl(args);
  if (r.exitCode !== 0) throw new FerryError(ErrorCode.Internal, `systemctl ${args.join(' ')} failed: ${r.output}`, hint);
}

/** Path of the unit file `name` in `unitDir`. */
export function unitPath(unitDir: string, name: string): string {
  return join(unitDir, `${name}.service`);
}

/**
 * Checks the host (root; systemd unless `start` is false), writes the unit,
 * reloads systemd and (unless `start` is false) enables and starts it.
 */
export async function installService(o: UnitOptions, start: boolean, host: ServiceHost = systemHost): Promise<string> {
  checkServiceHost(host, 'install-service', start);
  if (!existsSync(o.unitDir)) {
    throw new FerryError(ErrorCode.InvalidArgument, `unit directory ${o.unitDir} does not exist`, 'is this a systemd host? pass --unit-dir to write elsewhere');
  }
  const path = unitPath(o.unitDir, o.name);
  writeFileAtomic(path, renderUnit(o), 0o644);
  if (start) {
    for (const argv of [['daemon-reload'], ['enable', '--now', `${o.name}.service`]]) {
      await systemctlOk(host, argv, `the unit was written to ${path}; check \`systemctl status ${o.name}\``);
    }
  }
  return path;
}

/**
 * Stops the service if its unit is installed (for `reset`). Returns whether
 * there was a unit to stop; needs root and systemd only when there is one.
 */
export async function stopService(unitDir: string, name: string, host: ServiceHost = systemHost): Promise<boolean> {
  if (!existsSync(unitPath(unitDir, name))) return false;
  checkServiceHost(host, 'reset', true);
  await systemctlOk(host, ['stop', `${name}.service`], `stop it by hand (systemctl stop ${name}) and run reset again`);
  return true;
}

/**
 * Stops, disables and removes the unit, then reloads systemd. Idempotent:
 * with no unit file it changes nothing and returns false.
 */
export async function uninstallService(unitDir: string, name: string, host: ServiceHost = systemHost): Promise<boolean> {
  checkServiceHost(host, 'uninstall-service', true);
  const path = unitPath(unitDir, name);
  if (!existsSync(path)) return false;
  // disable --now stops it too; a unit systemd never loaded is still removed.
  const r = await host.systemctl(['disable', '--now', `${name}.service`]);
  if (r.exitCode !== 0 && !/not loaded|does not exist|No such file/i.test(r.output)) {
    throw new FerryError(ErrorCode.Internal, `systemctl disable --now ${name}.service failed: ${r.output}`, `check \`systemctl status ${name}\`, then run uninstall-service again`);
  }
  rmSync(path, { force: true });
  await systemctlOk(host, ['daemon-reload'], `the unit file ${path} is removed; run \`systemctl daemon-reload\``);
  return true;
}
