import type { Handlers } from '../../../common/src/cli/dispatch.js';

/**
 * Each command of the table (table.ts) and the function that runs it. A
 * group's handler ("token") gets the subcommand name first; a path of its
 * own ("bundle push") gets only what follows. Handlers load on use, so help
 * and usage errors answer at once without loading gRPC, SQLite and the rest.
 */
export const FERRY_HANDLERS: Handlers = {
  'controller install-service': async (a) => (await import('./cmd-controller-service.js')).cmdInstallControllerService(a),
  'controller uninstall-service': async (a) => (await import('./cmd-controller-service.js')).cmdUninstallControllerService(a),
  'controller status': async (a) => (await import('./cmd-controller-status.js')).cmdControllerStatus(a),
  'controller migrate-store': async (a) => (await import('./cmd-controller-migrate.js')).cmdControllerMigrateStore(a),
  'controller backup': async (a) => (await import('./cmd-controller-backup.js')).cmdControllerBackup(a),
  'controller restore': async (a) => (await import('./cmd-controller-backup.js')).cmdControllerRestore(a),
  controller: async (a) => (await import('./cmd-controller.js')).cmdController(a),
  token: async (a) => (await import('./cmd-token.js')).cmdToken(a),
  'agents upgrade': async (a) => (await import('./cmd-rollout.js')).cmdAgentsUpgrade(a),
  'agents release add': async (a) => (await import('./cmd-agent-release.js')).cmdAgentRelease('add', a),
  'agents release ls': async (a) => (await import('./cmd-agent-release.js')).cmdAgentRelease('ls', a),
  'agents release rm': async (a) => (await import('./cmd-agent-release.js')).cmdAgentRelease('rm', a),
  agents: async (a) => (await import('./cmd-agents.js')).cmdAgents(a),
  exec: async (a) => (await import('./cmd-exec.js')).cmdExec(a),
  operator: async (a) => (await import('./cmd-operator.js')).cmdOperator(a),
  key: async (a) => (await import('./cmd-key.js')).cmdKey(a),
  plan: async (a) => (await import('./cmd-plan.js')).cmdPlan(a),
  run: async (a) => (await import('./cmd-plan.js')).cmdRun(a),
  rollout: async (a) => (await import('./cmd-rollout.js')).cmdRollout(a),
  jobs: async (a) => (await import('./cmd-jobs.js')).cmdJobs(a),
  audit: async (a) => (await import('./cmd-audit.js')).cmdAudit(a),
  'bundle build': async (a) => (await import('./cmd-bundle-build.js')).cmdBundleBuild('build', a),
  'bundle push': async (a) => (await import('./cmd-bundle-build.js')).cmdBundleBuild('push', a),
  'bundle lint': async (a) => (await import('./cmd-bundle-build.js')).cmdBundleBuild('lint', a),
  relay: async (a) => (await import('./cmd-relay.js')).cmdRelay(a),
  relays: async (a) => (await import('./cmd-relay.js')).cmdRelays(a),
  registry: async (a) => (await import('./cmd-registry.js')).cmdRegistry(a),
  bundle: async (a) => (await import('./cmd-bundle.js')).cmdBundleAdmin(a[0] ?? '', a.slice(1)),
};

