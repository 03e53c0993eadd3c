import 'reflect-metadata';
import { runCli } from '../../../common/src/cli-support.js';
import { dispatch } from '../../../common/src/cli/dispatch.js';
import { FERRY_HANDLERS } from './handlers.js';
import { FERRY_CLI } from './table.js';

void runCli(() => dispatch(FERRY_CLI, FERRY_HANDLERS, process.argv.slice(2)));
