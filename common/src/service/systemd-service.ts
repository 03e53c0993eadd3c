import { accessSync, constants, existsSync, rmSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ErrorCode, FerryError } from '../errors.js';
import { runProcess } from '../proc/run-process.js';
import { writeFileAtomic } from '../secure-fs.js';

/**
 * Installing, stopping and removing a systemd service, shared by
 * `ferry-agent install-service` and `ferry controller install-service`:
 * the same host checks (root, systemd running) before anything is written,
 * the same atomic unit write, the same systemctl sequence and messages.
 * Each program renders its own unit text (agent/src/service/unit-file.ts,
 * controller/src/service/controller-unit.ts).
 */

/** Which program's service this is, for messages: `ferry-agent` or `ferry controller`. */
export interface ServiceProgram {
  /** The command prefix an operator types, e.g. "ferry-agent" or "ferry controller". */
  cli: string;
  /** What to do on a host without systemd (one sentence). */
  withoutSystemd: string;
}

/** Quotes one argument for a systemd ExecStart line. */
export function quoteExecArg(a: string): string {
  // systemd expands %-specifiers and $VARIABLES in command lines even inside quotes: both are doubled to stay literal.
  const s = a.replace(/%/g, '%%').replace(/\$/g, () => '$$');
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `"${s.replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * What installing a service needs from the host, behind one interface so the
 * checks are tested without root or a booted systemd (tests pass a fake; the
 * CLIs use systemHost).
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
  systemctl: (args) => systemctl(args),
};

/** How long one systemctl may take before it is given up (a wedged systemd must not hang a caller forever). */
const SYSTEMCTL_TIMEOUT_MS = 60_000;

/**
 * Runs `systemctl ARGS` in the C locale: the exit code, everything it
 * printed (`output`, for messages) and its standard output alone (`stdout`,
 * for parsing `systemctl show`). The one systemctl runner of the service
 * installers and the agent's self-upgrade (agent/src/upgrade/upgrade-host.ts).
 */
export async function systemctl(args: string[]): Promise<{ exitCode: number; output: string; stdout: string }> {
  const r = await runProcess({ argv: ['systemctl', ...args], plainLocale: true, timeoutMs: SYSTEMCTL_TIMEOUT_MS });
  return { exitCode: r.exitCode ?? -1, output: ((r.startError ?? '') + r.stderr + r.stdout).trim(), stdout: r.stdout };
}

/**
 * Refuses, before anything is written, when this host cannot take the
 * service: not root (the unit directory, the state directory and systemctl
 * are root's), or (when systemd must act) systemd not running.
 */
export function checkServiceHost(host: ServiceHost, p: ServiceProgram, what: string, needSystemd: boolean): void {
  if (!host.isRoot()) {
    throw new FerryError(ErrorCode.InvalidArgument, `${what} must run as root (it manages a system service)`, `run it again with sudo: sudo ${p.cli} ${what}`);
  }
  const problem = needSystemd ? host.systemdProblem() : undefined;
  if (problem) {
    throw new FerryError(ErrorCode.InvalidArgument, `${what}: ${problem}`,
      `${p.withoutSystemd}; to only write the unit (e.g. into an image), pass --no-start --unit-dir DIR`);
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
 * Checks the host (root; systemd unless `start` is false), runs `prepare`
 * (e.g. makes the directories the unit names), writes the unit text
 * atomically, and (unless `start` is false) reloads systemd, enables and
 * starts it. Returns the unit's path.
 */
export async function installUnit(p: ServiceProgram, unit: { unitDir: string; name: string; text: string; prepare?: () => void }, start: boolean, host: ServiceHost = systemHost): Promise<string> {
  checkServiceHost(host, p, 'install-service', start);
  unit.prepare?.();
  if (!existsSync(unit.unitDir)) {
    throw new FerryError(ErrorCode.InvalidArgument, `unit directory ${unit.unitDir} does not exist`, 'is this a systemd host? pass --unit-dir to write elsewhere');
  }
  const path = unitPath(unit.unitDir, unit.name);
  writeFileAtomic(path, unit.text, 0o644);
  if (start) {
    for (const argv of [['daemon-reload'], ['enable', '--now', `${unit.name}.service`]]) {
      await systemctlOk(host, argv, `the unit was written to ${path}; check \`systemctl status ${unit.name}\``);
    }
  }
  return path;
}

/**
 * Stops the service if its unit is installed. Returns whether there was a
 * unit to stop; needs root and systemd only when there is one.
 */
export async function stopUnit(p: ServiceProgram, what: string, unitDir: string, name: string, host: ServiceHost = systemHost): Promise<boolean> {
  if (!existsSync(unitPath(unitDir, name))) return false;
  checkServiceHost(host, p, what, true);
  await systemctlOk(host, ['stop', `${name}.service`], `stop it by hand (systemctl stop ${name}) and run ${what} again`);
  return true;
}

/**
 * Stops, disables and removes the unit, then reloads systemd. Idempotent:
 * with no unit file it changes nothing and returns false.
 */
export async function uninstallUnit(p: ServiceProgram, unitDir: string, name: string, host: ServiceHost = systemHost): Promise<boolean> {
  checkServiceHost(host, p, 'uninstall-service', true);
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
