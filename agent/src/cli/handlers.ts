import type { Handlers } from '../../../common/src/cli/dispatch.js';
import { cmdUpgrade, cmdUpgradeGuard, cmdUpgradeWatch, cmdVersion } from './cmd-upgrade.js';
import { cmdInstallService, cmdJoin, cmdReset, cmdRun, cmdStatus, cmdUninstallService } from './commands.js';

/** Each command of the table (table.ts) and the function that runs it. */
export const AGENT_HANDLERS: Handlers = {
  join: cmdJoin,
  run: cmdRun,
  status: cmdStatus,
  'install-service': cmdInstallService,
  'uninstall-service': cmdUninstallService,
  reset: cmdReset,
  version: cmdVersion,
  upgrade: cmdUpgrade,
  'upgrade-watch': cmdUpgradeWatch,
  'upgrade-guard': cmdUpgradeGuard,
};
