import { runProcess } from '../proc/run-process.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { writeFileAtomic } from '../../../common/src/secure-fs.js';
import { Exit } from '../../../common/src/exit-codes.js';

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
    'KillMode=mixed',
    'TimeoutStopSec=15s',
    'StateDirectoryMode=0700',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Writes the unit, reloads systemd and (unless `start` is false) enables and starts it. */
export async function installService(o: UnitOptions, start: boolean): Promise<string> {
  if (!existsSync(o.unitDir)) {
    throw new FerryError(ErrorCode.InvalidArgument, `unit directory ${o.unitDir} does not exist`, 'is this a systemd host? pass --unit-dir to write elsewhere');
  }
  const path = join(o.unitDir, `${o.name}.service`);
  writeFileAtomic(path, renderUnit(o), 0o644);
  if (start) {
    for (const argv of [['daemon-reload'], ['enable', '--now', `${o.name}.service`]]) {
      const r = await runProcess({ argv: ['systemctl', ...argv], plainLocale: true });
      if (r.exitCode !== 0) {
        throw new FerryError(ErrorCode.Internal, `systemctl ${argv.join(' ')} failed: ${(r.startError ?? r.stderr).trim() || r.stdout.trim()}`,
          `the unit was written to ${path}; check \`systemctl status ${o.name}\``);
      }
    }
  }
  return path;
}
