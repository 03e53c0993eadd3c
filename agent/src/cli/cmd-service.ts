import { existsSync, rmSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { systemUpgradeHost } from '../upgrade/upgrade-host.js';
import { createInterface } from 'node:readline/promises';
import { isSea } from 'node:sea';
import { parseFlags } from '../../../common/src/cli-support.js';
import { DirLock } from '../../../common/src/dir-lock.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { leaveFleet } from '../enroll/leave.js';
import { loadAgentConfig, type AgentConfig, type AgentRawConfig } from '../config.js';
import { installService, stopService, uninstallService, unitPath } from '../service/unit-file.js';
import { AgentState } from '../state/agent-state.js';

/** Flags of the service commands: where the state is, a settings file, and which unit. */
const flags = {
  state: { type: 'string' as const }, config: { type: 'string' as const },
  'unit-dir': { type: 'string' as const }, name: { type: 'string' as const },
};
const UNIT_DIR = '/etc/systemd/system';
const UNIT_NAME = 'ferry-agent';

function settings(values: AgentRawConfig & { config?: string }): AgentConfig {
  return loadAgentConfig({ state: values.state }, values.config);
}

/** `ferry-agent install-service [--unit-dir DIR] [--name NAME] [--no-start]`: root and systemd are checked before anything is written. */
export async function cmdInstallService(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { ...flags, 'no-start': { type: 'boolean' } }, false);
  const state = new AgentState(settings(values).stateDir);
  // In the single binary, the agent itself: by the path it was started with
  // when absolute (after a self-upgrade that is the switched symlink, which
  // must stay in the unit; execPath is its target), else execPath. In
  // development, node runs this script.
  const launched = systemUpgradeHost.launchPath();
  const command = isSea() ? [isAbsolute(launched) ? launched : process.execPath] : [process.execPath, resolve(process.argv[1]!)];
  const path = await installService({
    command, stateDir: state.dir, unitDir: values['unit-dir'] ?? UNIT_DIR, name: values.name ?? UNIT_NAME,
    // The service reads the same settings file this command was given.
    ...(values.config ? { configFile: resolve(values.config) } : {}),
  }, !values['no-start']);
  process.stdout.write(`wrote ${path}${values['no-start'] ? '' : '; enabled and started'}\n`);
  return Exit.Ok;
}

/** `ferry-agent uninstall-service`: stop, disable, remove the unit, daemon-reload; a second run changes nothing. */
export async function cmdUninstallService(args: string[]): Promise<number> {
  const { values } = parseFlags(args, flags, false);
  const unitDir = values['unit-dir'] ?? UNIT_DIR;
  const name = values.name ?? UNIT_NAME;
  const removed = await uninstallService(unitDir, name);
  process.stdout.write(removed
    ? `stopped and disabled ${name}.service; removed ${unitPath(unitDir, name)}\nthe agent state is kept; remove it with \`ferry-agent reset\`\n`
    : `${name}.service is not installed (no ${unitPath(unitDir, name)}); nothing to do\n`);
  return Exit.Ok;
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim().toLowerCase() === 'yes';
  } finally {
    rl.close();
  }
}

/**
 * `ferry-agent reset [--yes]`: stops the service if it is installed, then
 * removes the state directory (identity, key, journal, bundle cache) under
 * the directory's lock, so a running `ferry-agent run` is never pulled out
 * from under. Before the key is deleted, the controller is told (when
 * reachable) that this agent leaves, and revokes it; when it is not, the
 * output says to revoke the agent there.
 */
export async function cmdReset(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { ...flags, yes: { type: 'boolean', short: 'y' } }, false);
  const state = new AgentState(settings(values).stateDir);
  if (!existsSync(state.dir)) {
    process.stdout.write(`nothing to reset: ${state.dir} does not exist\n`);
    return Exit.Ok;
  }
  const agentId = state.isEnrolled() ? state.load().identity.agentId : undefined;
  const what = `${state.dir}${agentId ? ` (the identity of agent ${agentId}: key, certificate, journal, bundle cache)` : ''}`;
  if (!values.yes) {
    if (!process.stdin.isTTY) {
      throw new FerryError(ErrorCode.InvalidArgument, `reset deletes ${what} and needs a confirmation`, 'pass --yes to confirm without a prompt');
    }
    if (!(await confirm(`This stops the agent and deletes ${what}.\nType yes to continue: `))) {
      process.stderr.write('not reset\n');
      return Exit.Failure;
    }
  }
  const name = values.name ?? UNIT_NAME;
  const stopped = await stopService(values['unit-dir'] ?? UNIT_DIR, name);
  // Held by a live `ferry-agent run` (not the service just stopped): refuse, naming it.
  const lock = DirLock.acquire(state.dir, {
    owner: 'ferry-agent reset', what: 'the agent state directory',
    hint: `stop the agent first (systemctl stop ${name}, or end the ferry-agent run that holds it), then run reset again`,
  });
  let left;
  try {
    // With the key still here: the controller knows the agent by its certificate.
    left = agentId ? await leaveFleet(state, 'ferry-agent reset') : undefined;
    rmSync(state.dir, { recursive: true, force: true });
  } finally {
    lock.release();
  }
  process.stdout.write([
    ...(stopped ? [`stopped ${name}.service (its unit stays installed; remove it with \`ferry-agent uninstall-service\`)`] : []),
    `removed ${state.dir}`,
    !left ? ''
      : left.told ? `told the controller at ${left.address}: agent ${agentId} is revoked there (the operator can \`ferry agents rm ${agentId}\`)`
      : `could not tell the controller (${left.why}): ask the operator to run \`ferry agents revoke ${agentId}\``,
    'to enroll this host again: ferry-agent join <join string>',
  ].filter(Boolean).join('\n') + '\n');
  return Exit.Ok;
}
