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
  endQuietlyOnClosedPipe();
  try {
    const code = await main();
    // A command that finished after the cancel still exits 130: the operator stopped it.
    process.exitCode = interrupted ? Exit.Interrupted : code;
  } catch (err) {
    if (interrupted) {
      // The command's own cancel ended the stream; that is not an error to report.
      process.exitCode = Exit.Interrupted;
      return;
    }
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

let interrupted = false;

/**
 * Makes Ctrl-C (SIGINT) end a command's stream with `cancel`, then exit 130
 * (Exit.Interrupted) once the command has wound down, without an error report.
 * `notice` tells the operator what the cancel does to the remote work. A
 * second Ctrl-C exits at once. Returns the function that removes the handler
 * (call it when the remote work is over).
 */
export function onInterrupt(cancel: () => void, notice: string | (() => string)): () => void {
  const handler = () => {
    if (interrupted) process.exit(Exit.Interrupted);
    interrupted = true;
    process.stderr.write(`interrupted: ${typeof notice === 'string' ? notice : notice()} (Ctrl-C again to quit at once)\n`);
    cancel();
  };
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

/**
 * `ferry exec --json ... | head -1`: when the reader closes the pipe, the
 * next write fails with EPIPE. That is the reader saying "enough", as SIGPIPE
 * says it to C programs, so the CLI ends quietly with the code it has so far
 * instead of a stack trace; closing the connections ends any remote stream.
 */
function endQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : Exit.Ok);
      throw err;
    });
  }
}

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
