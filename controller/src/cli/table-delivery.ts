import type { CommandSpec, FlagSpec } from '../../../common/src/cli/spec.js';

/**
 * The `ferry` commands that ship software: keys, bundles, plans, runs and
 * rollouts. Part of the command table (see table.ts): add a flag here and
 * the parser, --help, completion and the man page all have it.
 */

const json: FlagSpec = { type: 'boolean', help: 'print JSON records, one object per line (docs/json.md)' };
const selector: FlagSpec = { type: 'string', short: 'l', value: 'SELECTOR', help: 'hosts whose labels match, e.g. site=plant-7,role!=cloud' };
/** exec, run and bundle prefetch: whom to act on (see targets-cli.ts). */
export const targetSpecs: Record<string, FlagSpec> = {
  selector,
  host: { type: 'string', multiple: true, value: 'HOST', help: 'a host by hostname or agent id (repeatable)' },
  all: { type: 'boolean', help: 'every enrolled host (must be said explicitly)' },
  'list-hosts': { type: 'boolean', help: 'show who would be targeted, and do nothing' },
  'dry-run': { type: 'boolean', help: 'the same as --list-hosts' },
};
const param: FlagSpec = { type: 'string', multiple: true, value: 'NAME=VALUE', help: 'a plan parameter' };
const signKey: FlagSpec = { type: 'string', value: 'FILE', help: 'the operator signing key (from `ferry key gen`)' };
const ID = 'ID';
const idCmd = (name: string, summary: string, flags: CommandSpec['flags'] = {}, more: Partial<CommandSpec> = {}): CommandSpec =>
  ({ name, summary, args: ID, shared: true, flags: { ...flags, json }, ...more });

const buildFlags = {
  name: { type: 'string', value: 'NAME', help: 'bundle name (default: from ferry-bundle.yaml or the directory)' },
  version: { type: 'string', value: 'VERSION', help: 'bundle version (default: from ferry-bundle.yaml)' },
  arch: { type: 'string', multiple: true, value: 'ARCH', help: 'architecture the bundle is for: amd64, arm64' },
  key: signKey,
  force: { type: 'boolean', help: 'ship even when lint finds errors' },
} as const;

export const keyCommand: CommandSpec = {
  name: 'key', summary: 'operator signing keys for bundles and plans',
  subcommands: [
    { name: 'gen', summary: 'make an ed25519 signing key pair here', description: 'Writes NAME.key (secret, mode 0600, never sent anywhere) and NAME.pub (to share).',
      flags: { out: { type: 'string', value: 'NAME', help: 'file name without extension (default operator)' }, force: { type: 'boolean', help: 'replace an existing key pair' } },
      examples: ['ferry key gen --out ops'] },
    { name: 'add', summary: 'make the fleet trust a public key', args: 'FILE.pub', shared: true,
      description: 'Hosts pin the keys the controller trusts when they enroll: add keys before enrolling hosts.',
      flags: { name: { type: 'string', value: 'NAME', help: 'a name for the key (e.g. who holds it)' }, json }, examples: ['ferry key add ops.pub --name alice'] },
    { name: 'ls', summary: 'list trusted signing keys', shared: true, flags: { json } },
  ],
};

export const bundleCommand: CommandSpec = {
  name: 'bundle', summary: 'signed offline packages: build, lint, push, stage on hosts',
  subcommands: [
    { name: 'lint', summary: 'check a bundle is complete offline', args: 'DIR|NAME:VERSION', shared: true,
      description: 'Every image referenced by manifests, charts, static pods and plans must be inside the bundle (after registry rewrites), and nothing may reach for the internet. Findings name file and line. NAME:VERSION lints a pushed bundle on the controller. Exit 1 when there are errors.',
      flags: { json }, examples: ['ferry bundle lint ./kubeedge-edge'] },
    { name: 'build', summary: 'lint, chunk and sign a directory into one file to carry across the air gap', args: 'DIR',
      flags: { out: { type: 'string', short: 'o', value: 'FILE', help: 'the .ferry file to write' }, ...buildFlags, json },
      examples: ['ferry bundle build ./kubeedge-edge -o kubeedge-edge-1.22.0.ferry --version 1.22.0 --arch amd64 --key ops.key'] },
    { name: 'push', summary: 'upload a bundle (directory or .ferry file)', args: 'DIR|FILE', shared: true,
      description: 'A directory is an offline package (images/*.tar, bin/, crds/, manifests/, helm-charts/, meta/, optional ferry-bundle.yaml): it is linted (findings block unless --force), chunked and signed. Only the chunks the controller lacks are sent.',
      flags: { ...buildFlags, json }, examples: ['ferry bundle push ./kubeedge-edge --name kubeedge-edge --version 1.22.0 --arch amd64 --key ops.key', 'ferry bundle push kubeedge-edge-1.22.0.ferry'] },
    { name: 'ls', summary: 'list bundles on the controller', shared: true, flags: { json } },
    { name: 'show', summary: "a bundle's images, files and registry rewrites", args: 'NAME:VERSION', shared: true, flags: { json }, examples: ['ferry bundle show kubeedge-edge:1.22.0'] },
    { name: 'rm', summary: 'remove a bundle and collect chunks nothing else uses', args: 'NAME:VERSION', shared: true,
      description: 'A bundle published on the registry (ferry registry ls) is refused: hosts may be pulling from it. So is a bundle an unfinished rollout or a job still under way on some host names (with several replicas, whichever replica serves those hosts). --force unpublishes it first and removes it anyway.',
      flags: { force: { type: 'boolean', help: 'remove it even if it is published (unpublishes it first) or in use by an unfinished rollout or job' }, json } },
    { name: 'prefetch', summary: 'stage a bundle on matching hosts ahead of a rollout', args: 'NAME:VERSION', shared: true,
      description: 'Each host fetches only the chunks it lacks, verifies them and assembles the files; progress is shown until every host is ready or failed.',
      flags: { ...targetSpecs, json }, examples: ['ferry bundle prefetch kubeedge-edge:1.22.0 --selector role=edge'] },
  ],
};

export const registryCommand: CommandSpec = {
  name: 'registry', summary: "serve bundles' images and files to hosts over HTTPS (docs/registry.md)",
  subcommands: [
    { name: 'publish', summary: "serve a bundle's images on the registry and its files on the files repository", args: 'NAME:VERSION', shared: true,
      description: 'Every image of the bundle is published under its name after the bundle\'s rewrite rules, or only what --as names. Atomic: a tag resolves only once everything below it can be served. Publishing again replaces the publication. Needs the controller started with --registry-addr to be reachable.',
      flags: {
        as: { type: 'string', multiple: true, value: '[SRC=]DEST', help: 'publish an image under this name (SRC picks one image of the bundle)' },
        anonymous: { type: 'boolean', help: 'clients without a fleet certificate may pull these images and files' },
        json,
      },
      examples: ['ferry registry publish kubespray-offline:2.26.0', 'ferry registry publish lvscare:1.1.3 --as sea.hub:5000/sealerio/lvscare:v1.1.3-beta.8'] },
    { name: 'ls', summary: 'list published bundles and their tags', shared: true, flags: { json } },
    { name: 'unpublish', summary: 'stop serving a bundle (the bundle stays)', args: 'NAME:VERSION', shared: true, flags: { json } },
  ],
};

export const planCommand: CommandSpec = {
  name: 'plan', summary: 'install plans: validate, push, list, show',
  subcommands: [
    { name: 'validate', summary: 'check a plan file; every problem at once, as file:line:col', args: 'FILE', examples: ['ferry plan validate examples/demo/plan.yaml'] },
    { name: 'push', summary: 'sign a plan and store it on the controller', args: 'FILE', shared: true, flags: { key: signKey, json }, examples: ['ferry plan push plan.yaml --key ops.key'] },
    { name: 'ls', summary: 'list plans on the controller', shared: true, flags: { json } },
    { name: 'show', summary: "print a stored plan's YAML", args: 'NAME', shared: true, flags: { json } },
  ],
};

export const runCommand: CommandSpec = {
  name: 'run', summary: 'run a plan now on matching hosts', args: 'PLAN', shared: true,
  description: 'Streams each host\'s steps and output, then a summary. --check shows what would change (diffs) and changes nothing. A host that loses its session mid-plan is reported (the plan goes on there). Ctrl-C cancels the plan on every host (exit 130). Exit 1 if any host failed or was offline.',
  flags: { ...targetSpecs, param, check: { type: 'boolean', help: 'show what would change; change nothing' },
    concurrency: { type: 'string', value: 'N', help: 'at most N hosts at once (default all)' },
    timeout: { type: 'string', value: 'DURATION', help: 'cancel a host\'s plan still running this long after it started, e.g. 30m (default none)' }, json },
  examples: ['ferry run kubeedge-edge --selector role=edge --param cloudcore=10.0.0.5 --check'],
};

const reason: FlagSpec = { type: 'string', value: 'TEXT', help: 'why (shown in the rollout\'s history)' };
export const exitOnPause: FlagSpec = { type: 'boolean', help: 'with --watch/watch: exit 8 when the rollout pauses or waits for approval' };
const host: FlagSpec = { type: 'string', multiple: true, value: 'HOST', help: 'a host by name or agent id' };

/** Which hosts are left out, and the strategy: `rollout create` and `agents upgrade` take the same ones. */
export const strategyFlags: Record<string, FlagSpec> = {
  exclude: { type: 'string', multiple: true, value: 'HOST', help: 'leave this host out' },
  waves: { type: 'string', value: 'LIST', help: 'cumulative wave sizes, e.g. 1,10%,100%' },
  'max-concurrency': { type: 'string', value: 'N|P%', help: 'hosts running at once' },
  'error-budget': { type: 'string', value: 'N|P%', help: 'failures allowed in the whole rollout' },
  'wave-error-budget': { type: 'string', value: 'N|P%', help: 'failures allowed per wave' },
  'on-failure': { type: 'string', value: 'ACTION', help: 'when the budget is exceeded: pause, abort or continue' },
  wait: { type: 'string', value: 'DURATION', help: 'pause between waves, e.g. 30s' },
  approval: { type: 'boolean', help: 'wait for `ferry rollout approve` before each next wave' },
  'offline-timeout': { type: 'string', value: 'DURATION', help: 'how long to wait for an offline host, e.g. 5m' },
  offline: { type: 'string', value: 'ACTION', help: 'an offline host after the timeout: fail or skip' },
};

export const rolloutCommand: CommandSpec = {
  name: 'rollout', summary: 'staged rollouts: canary, waves, error budgets (docs/rollouts.md)',
  subcommands: [
    { name: 'create', summary: 'start a staged rollout of a plan', shared: true,
      description: 'From a file (-f) or from flags. Waves are cumulative shares of the targets; the error budget is exceeded when failures are MORE than it allows. Prints the rollout id.',
      flags: {
        file: { type: 'string', short: 'f', value: 'FILE', help: 'the rollout spec (YAML); flags below are ignored' },
        watch: { type: 'boolean', help: 'follow it after creating it (as rollout watch)' },
        name: { type: 'string', value: 'NAME', help: 'a name for the rollout' },
        plan: { type: 'string', value: 'PLAN', help: 'the plan to roll out' },
        param, selector, host, ...strategyFlags,
        prefetch: { type: 'boolean', help: 'stage the plan\'s bundles on all targets first' },
        'exit-on-pause': exitOnPause, json,
      },
      examples: ['ferry rollout create -f rollout.yaml --watch', 'ferry rollout create --plan kubeedge-edge --selector role=edge --waves 1,10%,100% --error-budget 2'] },
    { name: 'ls', summary: 'list recent rollouts', shared: true, flags: { json } },
    idCmd('show', 'a rollout\'s waves, counts and failing hosts'),
    idCmd('pause', 'pause: no new hosts start', { reason }),
    idCmd('resume', 'resume a paused rollout'),
    idCmd('abort', 'cancel running steps; the rollout ends aborted', { reason, force: { type: 'boolean', help: 'stop waiting for running hosts that are offline' } },
      { description: 'The rollout ends aborted once every running host has stopped. --force stops waiting for running hosts that are offline (they end cancelled; what they report later is still logged).' }),
    idCmd('approve', 'start the next wave (after approval: true, or skip a wait)'),
    idCmd('retry', 'run failed hosts again (a new attempt)', { host }),
    idCmd('logs', 'one host\'s output in a rollout', { host, attempt: { type: 'string', value: 'N', help: 'which attempt (default the last)' } },
      { examples: ['ferry rollout logs ro-0123 --host edge-7'] }),
    idCmd('watch', 'follow a rollout live until it ends', { 'exit-on-pause': exitOnPause },
      { description: 'Live waves, counts, failing hosts and ETA on a terminal; plain lines otherwise; --json: one event record per line, then a result record (docs/json.md). Exit 0 succeeded, 1 failed or aborted, 8 paused or waiting for approval (with --exit-on-pause).' }),
  ],
};
