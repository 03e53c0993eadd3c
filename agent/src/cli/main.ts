import 'reflect-metadata';
import { runCli } from '../../../common/src/cli-support.js';
import { dispatch } from '../../../common/src/cli/dispatch.js';
import { AGENT_HANDLERS } from './handlers.js';
import { AGENT_CLI } from './table.js';

void runCli(() => dispatch(AGENT_CLI, AGENT_HANDLERS, process.argv.slice(2)));
