import 'reflect-metadata';
import { runCli } from '../../../common/src/cli-support.js';
import { dispatch, type Handlers } from '../../../common/src/cli/dispatch.js';
import { cmdInstallService, cmdJoin, cmdRun, cmdStatus } from './commands.js';
import { AGENT_CLI } from './table.js';

/** Each command of the table (table.ts) and the function that runs it. */
const HANDLERS: Handlers = {
  join: cmdJoin,
  run: cmdRun,
  status: cmdStatus,
  'install-service': cmdInstallService,
};

void runCli(() => dispatch(AGENT_CLI, HANDLERS, process.argv.slice(2)));
