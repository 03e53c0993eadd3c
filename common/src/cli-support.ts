import { parseArgs, type ParseArgsConfig } from 'node:util';
import { asFerryError, ErrorCode, FerryError } from './errors.js';
import { Exit, exitCodeFor } from './exit-codes.js';
import { takeValidatedFlags } from './cli/dispatch.js';

/**
 * Parses argv for one subcommand; unknown flags are usage errors that name the flag.
 * The dispatcher has already validated the arguments against the command
 * table (common/src/cli/), whose flags are what help shows; a handler that
 * parses a flag of the table differently (or not at all) is a bug caught here,
 * so the table and the handlers cannot drift apart unnoticed.
 */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, allowPositionals = true) {
  const table = takeValidatedFlags();
  for (const [name, f] of Object.entries(table ?? {})) {
    const o = options[name];
    if (!o || o.type !== f.type || Boolean(o.multiple) !== Boolean(f.multiple) || o.short !== f.short) {
      throw new FerryError(ErrorCode.Internal, `the command table's --${name} (${JSON.stringify({ type: f.type, multiple: f.multiple, short: f.short })}) is not what this command parses (${JSON.stringify(o ?? null)})`,
        'make the flag in the command table and the handler\'s parseFlags options agree');
    }
  }
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new FerryError(ErrorCode.InvalidArgument, (err as Error).message, 'see --help for this command');
  }
}

/**
 * Runs a CLI main function: prints a FerryError as "error: ..." plus its
 * hint (or as JSON with --json) and exits with the code for its kind.
 */
export async function runCli(main: () => Promise<number>, json = process.argv.includes('--json')): Promise<void> {
  quietKnownWarnings();
  try {
    process.exitCode = await main();
  } catch (err) {
    const fe = asFerryError(err);
    if (json) {
      process.stdout.write(JSON.stringify({ error: { code: fe.code, message: fe.message, hint: fe.hint ?? null } }) + '\n');
    } else {
      process.stderr.write(`error: ${fe.describe()}\n`);
      if (fe.code === ErrorCode.Internal && process.env['FERRY_DEBUG']) process.stderr.write(`${(err as Error).stack}\n`);
    }
    process.exitCode = exitCodeFor(fe);
  }
}

export { Exit };

/**
 * grpc-js sets the TLS server name even when dialling an IP address, which
 * makes node print DEP0123 on every connection. It is harmless and would only
 * confuse a field tech, so that one warning is dropped; all others print.
 */
function quietKnownWarnings(): void {
  process.removeAllListeners('warning');
  process.on('warning', (w: Error & { code?: string }) => {
    if (w.code === 'DEP0123') return;
    process.stderr.write(`warning: ${w.message}\n`);
  });
}
