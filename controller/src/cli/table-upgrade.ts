import type { CommandSpec, FlagSpec } from '../../../common/src/cli/spec.js';
import { exitOnPause, strategyFlags } from './table-delivery.js';

/**
 * `ferry agents upgrade` and `ferry agents release`: agent self-upgrade
 * from the controller (docs/agent-upgrade.md). Part of the command table
 * (table.ts).
 */

const json: FlagSpec = { type: 'boolean', help: 'print JSON records, one object per line (docs/json.md)' };

export const agentsUpgradeCommand: CommandSpec = {
  name: 'upgrade', summary: 'upgrade agents to a release, as a staged rollout', shared: true,
  description: 'Creates a rollout (waves, error budget, pause, abort, watch: docs/rollouts.md) whose hosts each stage the release for their architecture, switch and restart; a host succeeds only when the new version has reconnected and passed its self-check, and fails when it was rolled back (with the reason and the new version\'s last log lines) or refused. Hosts already on the version are left out. A version rolled back on a host is not tried there again unless --retry-failed is given. An upgrade in flight is not cancelled by an abort: the host commits or rolls back by itself.',
  flags: {
    to: { type: 'string', value: 'VERSION', help: 'the agent release to install (ferry agents release ls)' },
    selector: { type: 'string', short: 'l', value: 'SELECTOR', help: 'hosts whose labels match, e.g. ring=canary' },
    host: { type: 'string', multiple: true, value: 'HOST', help: 'a host by hostname or agent id (repeatable)' },
    all: { type: 'boolean', help: 'every enrolled host (must be said explicitly)' },
    ...strategyFlags,
    'retry-failed': { type: 'boolean', help: 'also try hosts where this version was rolled back before' },
    window: { type: 'string', value: 'DURATION', help: 'how long the new version has to reconnect (5s–1h; default the agent\'s, 2m)' },
    name: { type: 'string', value: 'NAME', help: 'a name for the rollout (default agent-VERSION)' },
    watch: { type: 'boolean', help: 'follow it after creating it (as rollout watch)' },
    'exit-on-pause': exitOnPause, json,
  },
  examples: ['ferry agents upgrade --to 0.2.0 --selector site=plant-7 --waves 1,10%,100% --error-budget 2 --watch', 'ferry agents upgrade --to 0.2.0 --host edge-7 --retry-failed'],
};

export const agentsReleaseCommand: CommandSpec = {
  name: 'release', summary: 'agent releases on the controller: signed, one per architecture',
  subcommands: [
    { name: 'add', summary: 'sign and upload agent binaries as a release', args: 'FILE ...', maxArgs: Infinity, shared: true,
      description: 'Each file must be a ferry-agent single binary (npm run build:agent); its architecture is read from the file and its version asked from it when it runs here (else taken from the others, or --version). Each architecture becomes a signed bundle ferry-agent-linux-ARCH holding the one file; only chunks the controller lacks are sent. The controller refuses a release newer than itself or more than one minor version behind it.',
      flags: {
        key: { type: 'string', value: 'FILE', help: 'the operator signing key (from `ferry key gen`); hosts must trust its public key' },
        version: { type: 'string', value: 'VERSION', help: 'the version, when no binary can run on this machine (checked again on each host)' },
        json,
      },
      examples: ['ferry agents release add dist/ferry-agent-linux-amd64 dist/ferry-agent-linux-arm64 --key ops.key'] },
    { name: 'ls', summary: 'list agent releases', shared: true, flags: { json } },
    { name: 'rm', summary: 'remove an agent release (every architecture, or one)', args: 'VERSION', shared: true,
      flags: { arch: { type: 'string', value: 'ARCH', help: 'only this architecture' }, json } },
  ],
};
