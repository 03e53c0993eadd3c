import 'reflect-metadata';
import { runCli } from '../../../common/src/cli-support.js';
import { dispatch, type Handlers } from '../../../common/src/cli/dispatch.js';
import { cmdAgents } from './cmd-agents.js';
import { cmdBundleAdmin } from './cmd-bundle.js';
import { cmdBundleBuild } from './cmd-bundle-build.js';
import { cmdController } from './cmd-controller.js';
import { cmdExec } from './cmd-exec.js';
import { cmdKey } from './cmd-key.js';
import { cmdOperator } from './cmd-operator.js';
import { cmdPlan, cmdRun } from './cmd-plan.js';
import { cmdRollout } from './cmd-rollout.js';
import { cmdToken } from './cmd-token.js';
import { FERRY_CLI } from './table.js';

/**
 * Each command of the table (table.ts) and the function that runs it. A
 * group's handler ("token") gets the subcommand name first; a path of its
 * own ("bundle push") gets only what follows.
 */
const HANDLERS: Handlers = {
  controller: cmdController,
  token: cmdToken,
  agents: cmdAgents,
  exec: cmdExec,
  operator: cmdOperator,
  key: cmdKey,
  plan: cmdPlan,
  run: cmdRun,
  rollout: cmdRollout,
  'bundle build': (args) => cmdBundleBuild('build', args),
  'bundle push': (args) => cmdBundleBuild('push', args),
  'bundle lint': (args) => cmdBundleBuild('lint', args),
  bundle: (args) => cmdBundleAdmin(args[0] ?? '', args.slice(1)),
};

void runCli(() => dispatch(FERRY_CLI, HANDLERS, process.argv.slice(2)));
