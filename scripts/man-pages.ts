import { AGENT_CLI } from '../agent/src/cli/table.js';
import { manPage } from '../common/src/cli/man.js';
import { FERRY_CLI } from '../controller/src/cli/table.js';

/**
 * The committed man pages and what they are rendered from (the CLIs' command
 * tables). `npm run man` writes them; a unit test checks they are current.
 */
export const MAN_PAGES: ReadonlyArray<{ file: string; render: () => string }> = [
  { file: 'docs/man/ferry.1', render: () => manPage(FERRY_CLI) },
  { file: 'docs/man/ferry-agent.1', render: () => manPage(AGENT_CLI) },
];
