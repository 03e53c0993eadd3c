import { parseArgs } from 'node:util';
import { ErrorCode, FerryError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { completionScript, SHELLS } from './completion.js';
import { cliHelp, commandHelp } from './help.js';
import { flagsOf, maxArgs, usageLine, type CliSpec, type CommandSpec, type FlagTable } from './spec.js';
import { didYouMean } from './suggest.js';

/** A command's implementation: its arguments after the command's name(s), its exit code. */
export type Handler = (args: string[]) => Promise<number>;

/**
 * Handlers by command path ("token", "bundle push"). A group's handler
 * ("token") gets the subcommand name as its first argument, as before the
 * table existed; a subcommand's own handler ("bundle push") gets what follows.
 */
export type Handlers = Readonly<Record<string, Handler>>;

/** The commands every CLI has, answered by the dispatcher itself. */
const BUILTINS: readonly CommandSpec[] = [
  { name: 'help', summary: 'show help for a command', args: '[COMMAND [SUBCOMMAND]]', maxArgs: 2, examples: [] },
  { name: 'completion', summary: 'print a shell completion script (bash or zsh)', args: 'bash|zsh',
    description: 'Prints a script that completes commands, subcommands and flags. Load it in the current shell with `source <(CLI completion bash)`, or install it: bash: write it to /etc/bash_completion.d/CLI; zsh: write it as _CLI to a directory on $fpath.' },
  { name: 'version', summary: 'print the version' },
];

/** The spec with help, completion and version added (what help, completion and man pages show). */
export function withBuiltins(cli: CliSpec): CliSpec {
  // A CLI may define its own `version` (ferry-agent's also describes the upgrade state); help and completion are always the dispatcher's.
  const own = cli.commands.find((c) => c.name === 'version');
  const builtins = BUILTINS.filter((b) => !(own && b.name === 'version')).map((b) => ({ ...b, ...(b.description ? { description: b.description.replaceAll('CLI', cli.name) } : {}),
    examples: b.name === 'completion' ? [`source <(${cli.name} completion bash)`] : b.name === 'help' ? [`${cli.name} help ${cli.commands[0]!.name}`] : [] }));
  return { ...cli, commands: [...cli.commands.filter((c) => c === own || !BUILTINS.some((b) => b.name === c.name)), ...builtins] };
}

/** The flags the dispatcher validated for the running command; parseFlags checks its own against them. */
let validated: FlagTable | undefined;

/** Takes (once) the flag table the current command was validated with. */
export function takeValidatedFlags(): FlagTable | undefined {
  const v = validated;
  validated = undefined;
  return v;
}

const usage = (message: string, hint: string) => new FerryError(ErrorCode.InvalidArgument, message, hint);

/**
 * Shared flags may come before the command (`ferry --data D agents ls`):
 * they move after its name(s). There they are global: a command that does
 * not take them (`key gen`) keeps only those it has a flag of its own for
 * (`controller start --data`) and ignores the others, so a wrapper can put
 * them in front of every command.
 */
function hoist(cli: CliSpec, argv: string[]): string[] {
  if (!cli.shared.hoist) return argv;
  const lifted: Array<{ name: string; words: string[] }> = [];
  let i = 0;
  for (;;) {
    const a = argv[i];
    const name = a?.startsWith('--') ? a.slice(2).split('=')[0]! : undefined;
    const f = name !== undefined ? cli.shared.flags[name] : undefined;
    if (!f) break;
    const takesNext = f.type === 'string' && !a!.includes('=');
    lifted.push({ name: name!, words: takesNext ? [a!, argv[i + 1] ?? ''] : [a!] });
    i += takesNext ? 2 : 1;
  }
  const rest = argv.slice(i);
  // The command the words name, through nested groups (`agents release add`): the lifted flags go right after it.
  let leaf = cli.commands.find((c) => c.name === rest[0]);
  let at = Math.min(rest.length, 1);
  while (leaf?.subcommands?.length && at < rest.length) {
    leaf = leaf.subcommands.find((s) => s.name === rest[at]);
    at++;
  }
  const keep = lifted.filter((l) => !leaf || leaf.shared || (leaf.flags && l.name in leaf.flags)).flatMap((l) => l.words);
  return [...rest.slice(0, at), ...keep, ...rest.slice(at)];
}

/** Finds a command by name among `cmds`, or says which one was probably meant. */
function find(cmds: readonly CommandSpec[], name: string, where: string, helpCmd: string): CommandSpec {
  const c = cmds.find((x) => x.name === name);
  if (c) return c;
  throw usage(`unknown command "${name}" for "${where}"${didYouMean(name, cmds.map((x) => x.name))}`, `\`${helpCmd}\` lists the commands`);
}

/** Validates flags and the number of positionals against the table; usage errors name the fix. */
function validate(cli: CliSpec, path: string[], cmd: CommandSpec, args: string[]): void {
  const flags = flagsOf(cli, cmd);
  const name = `${cli.name} ${path.join(' ')}`;
  const options = Object.fromEntries(Object.entries(flags).map(([n, f]) => [n, { type: f.type, multiple: f.multiple ?? false, ...(f.short ? { short: f.short } : {}) }]));
  let positionals: string[];
  try {
    ({ positionals } = parseArgs({ args, options, allowPositionals: true, strict: true }));
  } catch (err) {
    const e = err as Error & { code?: string };
    const hint = `\`${name} --help\` lists its flags`;
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'(-[^']*)'/.exec(e.message)?.[1] ?? '?';
      const known = Object.entries(flags).flatMap(([n, f]) => [`--${n}`, ...(f.short ? [`-${f.short}`] : [])]);
      throw usage(`unknown flag "${flag}" for "${name}"${didYouMean(flag.split('=')[0]!, known)}`, hint);
    }
    throw usage(`${e.message.replace(/\.$/, '')} (${name})`, hint);
  }
  const max = maxArgs(cmd);
  if (positionals.length > max) {
    const extra = positionals.slice(max).map((p) => `"${p}"`).join(' ');
    const takes = max === 0 ? 'takes no arguments' : `takes ${max === 1 ? 'one' : `at most ${max}`}: ${cmd.args}`;
    throw usage(`unexpected argument${positionals.length - max > 1 ? 's' : ''} ${extra}: ${name} ${takes}`,
      `usage: ${usageLine(cli, path, cmd)}${cmd.passthrough ? '' : ' (a value with spaces needs quotes)'}`);
  }
}

/**
 * Runs one command line against the table: help (`--help`, `-h`, `help CMD`)
 * without reaching anything, unknown commands and flags refused with a
 * suggestion, extra arguments refused, then the command's handler with its
 * arguments. Usage errors are FerryErrors of kind InvalidArgument (exit 2).
 */
export async function dispatch(cli: CliSpec, handlers: Handlers, argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const words = hoist(cli, argv);
  const print = (text: string) => {
    out.write(text);
    return Exit.Ok;
  };
  const [first, ...afterFirst] = words;
  if (first === undefined || first === '--help' || first === '-h') return print(cliHelp(cli));
  if (first === '--version') return print(`${cli.version}\n`);
  if (first.startsWith('-')) {
    throw usage(`unknown flag "${first}" before the command`, `flags go after the command; \`${cli.name} --help\` lists the commands`);
  }
  const top = find(cli.commands, first, cli.name, `${cli.name} --help`);
  const path = [top.name];
  let cmd = top;
  let rest = afterFirst;
  // Groups nest (`ferry agents release add`): descend until a command that runs.
  while (cmd.subcommands?.length) {
    const sub = rest[0];
    const at = `${cli.name} ${path.join(' ')}`;
    if (sub === undefined || sub.startsWith('-')) {
      if (rest.includes('--help') || rest.includes('-h')) return print(commandHelp(cli, path, cmd));
      throw usage(`"${at}" needs a command: ${cmd.subcommands.map((s) => s.name).join(', ')}`, `\`${at} --help\` says what each does`);
    }
    cmd = find(cmd.subcommands, sub, at, `${at} --help`);
    path.push(cmd.name);
    rest = rest.slice(1);
  }
  const dash = rest.indexOf('--');
  const own = dash < 0 ? rest : rest.slice(0, dash);
  if (own.includes('--help') || own.includes('-h')) return print(commandHelp(cli, path, cmd));
  validate(cli, path, cmd, cmd.passthrough ? own : rest);
  switch (path.join(' ')) {
    case 'help': return print(helpFor(cli, own));
    case 'version': if (handlers['version']) break; return print(`${cli.version}\n`);
    case 'completion': {
      const shell = own[0];
      if (shell !== 'bash' && shell !== 'zsh') {
        throw usage(`completion needs a shell: ${SHELLS.join(' or ')}${shell ? ` (not "${shell}")${didYouMean(shell, SHELLS)}` : ''}`, `e.g. source <(${cli.name} completion bash)`);
      }
      return print(completionScript(cli, shell));
    }
    default: break;
  }
  const handler = handlers[path.join(' ')] ?? handlers[top.name];
  if (!handler) throw new FerryError(ErrorCode.Internal, `no handler for "${cli.name} ${path.join(' ')}"`);
  validated = flagsOf(cli, cmd);
  try {
    return await handler(handlers[path.join(' ')] ? rest : afterFirst.slice(0, 1).concat(rest));
  } finally {
    validated = undefined;
  }
}

/** `ferry help [CMD [SUB]]`. */
function helpFor(cli: CliSpec, names: string[]): string {
  if (!names.length) return cliHelp(cli);
  const top = find(cli.commands, names[0]!, cli.name, `${cli.name} --help`);
  if (names.length === 1 || !top.subcommands?.length) return commandHelp(cli, [top.name], top);
  const sub = find(top.subcommands, names[1]!, `${cli.name} ${top.name}`, `${cli.name} ${top.name} --help`);
  return commandHelp(cli, [top.name, sub.name], sub);
}
