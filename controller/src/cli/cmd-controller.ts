import { parseFlags } from '../../../common/src/cli-support.js';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { Exit } from '../../../common/src/exit-codes.js';
import { createLogger } from '../../../common/src/log.js';
import { MALLOC_ENV, missingMallocEnv } from '../../../common/src/malloc-env.js';
import { loadControllerConfig } from '../config.js';
import { Controller } from '../controller.js';
import { tuneControllerGc } from '../gc-tuning.js';

/** `ferry controller start`: runs until SIGTERM/SIGINT, then drains with a deadline. */
export async function cmdController(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'start') throw new FerryError(ErrorCode.InvalidArgument, `unknown controller command "${sub ?? ''}"`, 'use `ferry controller start`');
  const { values } = parseFlags(rest, {
    data: { type: 'string' }, store: { type: 'string' }, chunks: { type: 'string' }, listen: { type: 'string' }, 'registry-addr': { type: 'string' }, san: { type: 'string', multiple: true },
    advertise: { type: 'string', multiple: true }, 'admin-socket': { type: 'string' }, 'http-addr': { type: 'string' }, config: { type: 'string' },
    heartbeat: { type: 'string' }, 'agent-cert-ttl': { type: 'string' }, 'agent-reauth-window': { type: 'string' }, 'job-retention': { type: 'string' }, 'lease-ttl': { type: 'string' }, 'log-level': { type: 'string' },
    'console-addr': { type: 'string' }, 'console-session-ttl': { type: 'string' },
  }, false);
  const { config: configFile, ...flags } = values;
  const cfg = loadControllerConfig(flags, configFile);
  const log = createLogger({ name: 'ferry-controller', level: cfg.logLevel, fd: 1 });
  const missing = missingMallocEnv();
  if (missing.length > 0) {
    // glibc reads these before any code runs, so only whoever starts the process can set them (README: running the controller as a service).
    log.info({ missing, recommended: MALLOC_ENV }, 'glibc malloc settings for serving bundles are not set; serving chunks costs more CPU without them');
  }
  const gc = tuneControllerGc();
  log.debug({ gc }, 'V8 old-generation growth for serving (controller/src/gc-tuning.ts)');
  const c = await Controller.start(cfg, log);
  process.stderr.write(
    `Ferry controller ${c.caCreated ? 'initialised and ' : ''}running\n` +
    `  agents dial:  ${c.ctx.joinAddresses().join(', ')}\n` +
    `  admin socket: ${cfg.adminSocket}\n` +
    `  metrics:      ${c.httpPort === undefined ? 'off' : `http://${cfg.httpAddr!.replace(/:\d+$/, '')}:${c.httpPort}/metrics (also /healthz, /readyz)`}\n` +
    `  CA pin:       ${c.pin}\n` +
    (c.consoleUrl ? `  web console:  ${c.consoleUrl} (log in with: ferry operator login)\n` : '') +
    `next: ferry token create --data ${cfg.dataDir} --ttl 2h --uses 10 --label site=...\n`,
  );
  // The one owner of signals in the controller process.
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) process.exit(Exit.Interrupted);
      stopping = true;
      log.info({ sig }, 'shutting down');
      void c.stop(10_000).then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return Exit.Ok;
}
