import { parseHostPort } from '../../../common/src/host-port.js';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isSea } from 'node:sea';
import { parseFlags } from '../../../common/src/cli-support.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { installUnit, uninstallUnit, unitPath } from '../../../common/src/service/systemd-service.js';
import { loadControllerConfig, type RawConfig } from '../config.js';
import { CONTROLLER_PROGRAM, renderControllerUnit } from '../service/controller-unit.js';

const UNIT_DIR = '/etc/systemd/system';
const UNIT_NAME = 'ferry-controller';

/** `controller start` settings install-service passes on to the service's command line. */
const START_FLAGS = ['listen', 'http-addr', 'registry-addr', 'console-addr', 'lease-ttl', 'admin-socket', 'chunks', 'san', 'advertise', 'log-level'] as const;

const flags = {
  data: { type: 'string' as const }, config: { type: 'string' as const },
  listen: { type: 'string' as const }, 'http-addr': { type: 'string' as const }, 'registry-addr': { type: 'string' as const }, 'admin-socket': { type: 'string' as const },
  'console-addr': { type: 'string' as const }, 'lease-ttl': { type: 'string' as const }, chunks: { type: 'string' as const },
  san: { type: 'string' as const, multiple: true }, advertise: { type: 'string' as const, multiple: true }, 'log-level': { type: 'string' as const },
  'unit-dir': { type: 'string' as const }, name: { type: 'string' as const },
  'no-start': { type: 'boolean' as const }, 'dry-run': { type: 'boolean' as const },
};

function portOf(addr: string | undefined): number {
  return addr ? parseHostPort(addr)?.port ?? 0 : 0;
}

/**
 * `ferry controller install-service`: renders the hardened unit for
 * `ferry controller start` with the settings given here, validated first
 * exactly as the service will see them (flags and --config; the shell's
 * FERRY_* environment does not reach a systemd service, so it is not used).
 * --dry-run prints the unit and changes nothing (no root needed).
 */
export async function cmdInstallControllerService(args: string[]): Promise<number> {
  const { values } = parseFlags(args, flags, false);
  const configFile = values.config ? resolve(values.config) : undefined;
  const raw: RawConfig = { data: values.data };
  for (const k of START_FLAGS) if (values[k] !== undefined) raw[k] = values[k];
  const cfg = loadControllerConfig(raw, configFile, {});
  const startArgs = ['--data', cfg.dataDir, ...(configFile ? ['--config', configFile] : [])];
  for (const k of START_FLAGS) {
    const v = values[k];
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) startArgs.push(`--${k}`, k === 'admin-socket' || k === 'chunks' ? resolve(one) : one);
  }
  // In a single binary, execPath is ferry itself; in development, node runs bin/ferry.js.
  const command = isSea() ? [process.execPath] : [process.execPath, resolve(process.argv[1]!)];
  const ports = [portOf(cfg.listen), portOf(cfg.httpAddr), portOf(cfg.registryAddr), portOf(cfg.consoleAddr)].filter((p) => p > 0);
  const text = renderControllerUnit({
    command, startArgs, dataDir: cfg.dataDir, adminSocket: cfg.adminSocket, chunkDir: cfg.chunkDir,
    // In development the program is the whole package (bin/, build/, node_modules/), not bin/ferry.js alone.
    readPaths: [...(configFile ? [configFile] : []), ...(isSea() ? [] : [dirname(dirname(resolve(process.argv[1]!)))])], lowestPort: ports.length ? Math.min(...ports) : 0,
  });
  const unitDir = resolve(values['unit-dir'] ?? UNIT_DIR);
  const name = values.name ?? UNIT_NAME;
  if (values['dry-run']) {
    process.stdout.write(text);
    process.stderr.write(`dry run: this unit would be written to ${unitPath(unitDir, name)}${values['no-start'] ? '' : `, then enabled and started`}; nothing was changed\n`);
    return Exit.Ok;
  }
  // ReadWritePaths= must exist when the service starts (systemd refuses to start it otherwise). A chunk
  // directory of its own is not made here: on shared storage, making it would hide an unmounted share.
  if (!cfg.chunkDir.startsWith(`${cfg.dataDir}/`) && !existsSync(cfg.chunkDir)) {
    throw new FerryError(ErrorCode.Config, `the chunk directory ${cfg.chunkDir} does not exist; nothing was installed`,
      'mount the shared chunk storage there (replicas, docs/ha.md) or create the directory, then run install-service again');
  }
  const prepare = () => {
    for (const d of [cfg.dataDir, dirname(cfg.adminSocket)]) if (!d.startsWith('/run/')) mkdirSync(d, { recursive: true, mode: 0o700 });
  };
  const path = await installUnit(CONTROLLER_PROGRAM, { unitDir, name, text, prepare }, !values['no-start']);
  process.stdout.write(`wrote ${path}${values['no-start'] ? '' : '; enabled and started'}\n`
    + `the service runs: ${[...command, 'controller', 'start', ...startArgs].join(' ')}\n`
    + `next: systemctl status ${name}; the CA pin is in journalctl -u ${name}\n`);
  return Exit.Ok;
}

/** `ferry controller uninstall-service`: stop, disable and remove the unit; the data directory stays. A second run changes nothing. */
export async function cmdUninstallControllerService(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { 'unit-dir': { type: 'string' }, name: { type: 'string' } }, false);
  const unitDir = resolve(values['unit-dir'] ?? UNIT_DIR);
  const name = values.name ?? UNIT_NAME;
  const removed = await uninstallUnit(CONTROLLER_PROGRAM, unitDir, name);
  process.stdout.write(removed
    ? `stopped and disabled ${name}.service; removed ${unitPath(unitDir, name)}\nthe data directory is kept\n`
    : `${name}.service is not installed (no ${unitPath(unitDir, name)}); nothing to do\n`);
  return Exit.Ok;
}
