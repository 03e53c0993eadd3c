import { cmdJobs } from './cmd-jobs.js';
import { exitCodeHelp } from '../../../common/src/exit-codes.js';
import 'reflect-metadata';
import { runCli } from '../../../common/src/cli-support.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { FERRY_VERSION } from '../../../common/src/version.js';
import { cmdAgents } from './cmd-agents.js';
import { cmdController } from './cmd-controller.js';
import { cmdExec } from './cmd-exec.js';
import { cmdOperator } from './cmd-operator.js';
import { cmdAudit } from './cmd-audit.js';
import { cmdToken } from './cmd-token.js';
import { cmdKey } from './cmd-key.js';
import { cmdBundleAdmin } from './cmd-bundle.js';
import { cmdBundleBuild } from './cmd-bundle-build.js';
import { cmdPlan, cmdRun } from './cmd-plan.js';
import { cmdRollout } from './cmd-rollout.js';

const HELP = `ferry ${FERRY_VERSION} — install and upgrade software on fleets of air-gapped hosts.

The controller:
  ferry controller start [--data DIR] [--listen HOST:PORT] [--san NAME ...]
                         [--advertise HOST:PORT ...] [--config FILE]
      First start creates the CA, the server certificate (for --san names and
      this host's addresses) and the store, then prints the CA pin. Settings:
      defaults < --config YAML < FERRY_* environment < flags.

Enrolling hosts:
  ferry token create --ttl 2h --uses 200 --label site=plant-7 --label role=edge
      Prints one join string (address + token + CA pin) for field techs:
      on each host, ferry-agent join '<join string>'. The secret is stored only
      as a hash and shown only now.
  ferry token ls | ferry token revoke ID

The fleet:
  ferry agents ls [--selector site=plant-7,role!=cloud] [--all] [--state online|offline|revoked]
                  [--sort hostname|id|state|last-seen|version] [-o wide|json|name] [--json]
  ferry agents show ID|HOSTNAME    facts, labels, bundles, certificate expiry, last seen
  ferry agents rm ID               forget a revoked agent (its history stays)
  ferry agents label [ID ...] [--selector S] key=value ... [--remove key]
  ferry agents revoke ID
  ferry agents allow-reauth ID     (an agent unseen longer than the re-authentication window)

Job history (every exec and plan run, kept for --job-retention, default 30d):
  ferry jobs ls [--kind exec|plan] [--limit 50] [--json]
  ferry jobs show ID [--json]
  ferry jobs logs ID [--host HOSTNAME|ID] [--json]

Running a command everywhere:
  ferry exec --selector role=edge [--timeout 30s] [--concurrency N] [--json] -- uname -a
      Streams each host's output live as "host | line", then a summary.

Signing keys and bundles:
  ferry key gen [--out operator]          ed25519 key pair here (operator.key stays here)
  ferry key add operator.pub              the fleet trusts it (hosts pin keys at enrollment)
  ferry key ls
  ferry bundle lint DIR|NAME:VERSION      every image referenced is inside; nothing reaches the internet
  ferry bundle push DIR --name N --version V --arch amd64 --key operator.key
      Lints (findings block unless --force), chunks, signs and uploads only the
      chunks the controller lacks. DIR is an offline package (images/*.tar, bin/,
      crds/, manifests/, helm-charts/, meta/, optional ferry-bundle.yaml).
  ferry bundle build DIR -o FILE.ferry ... then, across the air gap, ferry bundle push FILE.ferry
  ferry bundle ls | show NAME:VERSION | rm NAME:VERSION
  ferry bundle prefetch NAME:VERSION --selector role=edge
      Stage a bundle on matching hosts ahead of a rollout: each host fetches
      only the chunks it lacks, verifies them, and assembles the files.

Plans:
  ferry plan validate plan.yaml           every problem at once, as file:line:col
  ferry plan push plan.yaml --key operator.key
  ferry plan ls | ferry plan show NAME
  ferry run NAME --selector role=edge [--param k=v ...] [--check] [--concurrency N]
      Runs the plan now on matching hosts; --check shows what would change
      (diffs) and changes nothing. Exit 1 if any host failed.

Staged rollouts (docs/rollouts.md):
  ferry rollout create -f rollout.yaml [--watch]
  ferry rollout create --plan NAME --selector role=edge [--host H ...] [--exclude H ...]
        [--param k=v ...] [--waves 1,10%,100%] [--max-concurrency N|P%]
        [--error-budget N|P%] [--wave-error-budget N|P%] [--on-failure pause|abort|continue]
        [--wait 30s | --approval] [--offline-timeout 5m] [--offline fail|skip] [--prefetch]
      Waves are cumulative shares of the targets; the error budget is exceeded
      when failures are MORE than it allows. Prints the rollout id.
  ferry rollout ls | show ID | logs ID --host H [--attempt N]
  ferry rollout pause ID [--reason TEXT] | resume ID | abort ID [--reason TEXT] [--force]
      abort cancels running steps; the rollout ends aborted once every running
      host has stopped. --force stops waiting for running hosts that are
      offline (they end cancelled; what they report later is still logged).
  ferry rollout approve ID                next wave (after approval: true, or skip a wait)
  ferry rollout retry ID [--host H ...]   failed hosts run again (a new attempt)
  ferry rollout watch ID [--json] [--exit-on-pause]
      Live waves, counts, failing hosts and ETA; plain lines when not a
      terminal; --json: one event per line. Exit 0 succeeded, 1 failed or
      aborted, 8 paused or waiting for approval (with --exit-on-pause).

Remote admin and who may do what:
  ferry operator cert NAME --out DIR [--role viewer|admin] [--ttl 720h]
      viewer (the default) may only read; admin may change things.
  ferry operator ls [--json] | ferry operator revoke NAME|SERIAL
  ferry audit ls [--limit N] [--json]      who changed what, newest first
  ferry --controller HOST:PORT --cert F --key F --ca F <command> ...
      (also FERRY_CONTROLLER, FERRY_CERT, FERRY_KEY, FERRY_CA)

Every admin command talks to the controller's local socket DATA/admin.sock;
pick DATA with --data or FERRY_DATA (default /var/lib/ferry as root).
Selectors: key=value, key!=value, key, !key, comma-separated (all must hold).
`;

/** Global connection flags may come before the command; move them after it. */
function hoistGlobals(argv: string[]): string[] {
  const globals = new Set(['--data', '--admin-socket', '--controller', '--cert', '--key', '--ca']);
  const lifted: string[] = [];
  let i = 0;
  while (i < argv.length && globals.has(argv[i]!)) {
    lifted.push(argv[i]!, argv[i + 1] ?? '');
    i += 2;
  }
  const rest = argv.slice(i);
  // Keep `ferry exec ... -- argv` intact: globals go before the "--".
  const dash = rest.indexOf('--');
  const at = rest[0] === 'exec' ? (dash < 0 ? rest.length : dash) : rest.length;
  const cmdLen = rest[0] === 'exec' || rest[0] === 'run' ? 1 : 2;
  return [...rest.slice(0, cmdLen), ...lifted, ...rest.slice(cmdLen, at), ...rest.slice(at)];
}

async function main(): Promise<number> {
  const argv = hoistGlobals(process.argv.slice(2));
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'controller': return cmdController(rest);
    case 'token': return cmdToken(rest);
    case 'agents': return cmdAgents(rest);
    case 'exec': return cmdExec(rest);
    case 'operator': return cmdOperator(rest);
    case 'audit': return cmdAudit(rest);
    case 'key': return cmdKey(rest);
    case 'plan': return cmdPlan(rest);
    case 'run': return cmdRun(rest);
    case 'rollout': return cmdRollout(rest);
    case 'jobs': return cmdJobs(rest);
    case 'bundle':
      return ['build', 'push', 'lint'].includes(rest[0] ?? '') ? cmdBundleBuild(rest[0]!, rest.slice(1)) : cmdBundleAdmin(rest[0] ?? '', rest.slice(1));
    case 'version': case '--version':
      process.stdout.write(`${FERRY_VERSION}\n`);
      return 0;
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(`${HELP}\n${exitCodeHelp()}`);
      return 0;
    default:
      throw new FerryError(ErrorCode.InvalidArgument, `unknown command "${cmd}"`, 'run `ferry --help`');
  }
}

void runCli(main);
