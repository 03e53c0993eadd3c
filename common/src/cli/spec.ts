/**
 * The declarative description of a command line: commands, subcommands,
 * their flags (with one line of help each), positional arguments and
 * examples. The dispatcher parses with it, and help, shell completion and
 * man pages are rendered from it, so none of them can disagree.
 */

/** One flag: what node:util parseArgs needs, plus what help shows. */
export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder for the value in help, e.g. DURATION (string flags). */
  readonly value?: string;
  /** One line: what the flag does (and its default). */
  readonly help: string;
}

export type FlagTable = Readonly<Record<string, FlagSpec>>;

export interface CommandSpec {
  readonly name: string;
  /** One line, lower case, no full stop: shown in lists and as the man page's heading. */
  readonly summary: string;
  /** Paragraphs separated by blank lines; wrapped when rendered. */
  readonly description?: string;
  /** Positional arguments as usage shows them, e.g. "ID" or "[ID ...] KEY=VALUE ...". */
  readonly args?: string;
  /** How many positionals are accepted: 0 without `args`, else 1 unless given (Infinity = any). */
  readonly maxArgs?: number;
  readonly flags?: FlagTable;
  /** Takes the CLI's shared flags (ferry: connection flags; ferry-agent: --state, --config). */
  readonly shared?: boolean;
  /** Usage of what follows `--` (the command `ferry exec` runs); only what precedes it is parsed. */
  readonly passthrough?: string;
  readonly examples?: readonly string[];
  readonly subcommands?: readonly CommandSpec[];
}

/** A whole command line program. */
export interface CliSpec {
  readonly name: string;
  readonly version: string;
  readonly summary: string;
  readonly description: string;
  readonly commands: readonly CommandSpec[];
  /** Flags that commands marked `shared` take (may come before the command for ferry). */
  readonly shared: { readonly title: string; readonly flags: FlagTable; readonly hoist: boolean };
  /** Extra help/man sections (settings, selectors, files). */
  readonly notes: ReadonlyArray<{ readonly title: string; readonly text: string }>;
  readonly seeAlso: readonly string[];
}

/** A command reached by a path of names, e.g. ["rollout", "create"]. */
export interface Resolved {
  readonly path: readonly string[];
  readonly spec: CommandSpec;
}

/** The flags a command accepts: the shared ones (if it takes them) overlaid by its own. */
export function flagsOf(cli: CliSpec, cmd: CommandSpec): FlagTable {
  return { ...(cmd.shared ? cli.shared.flags : {}), ...(cmd.flags ?? {}) };
}

/** Every runnable command (leaves), depth first, with its path. */
export function leaves(cli: CliSpec): Resolved[] {
  const out: Resolved[] = [];
  const walk = (cmds: readonly CommandSpec[], path: string[]) => {
    for (const c of cmds) {
      if (c.subcommands?.length) walk(c.subcommands, [...path, c.name]);
      else out.push({ path: [...path, c.name], spec: c });
    }
  };
  walk(cli.commands, []);
  return out;
}

/** Every command and group with its path, depth first (groups before their subcommands). */
export function allCommands(cli: CliSpec): Resolved[] {
  const out: Resolved[] = [];
  const walk = (cmds: readonly CommandSpec[], path: string[]) => {
    for (const c of cmds) {
      out.push({ path: [...path, c.name], spec: c });
      if (c.subcommands?.length) walk(c.subcommands, [...path, c.name]);
    }
  };
  walk(cli.commands, []);
  return out;
}

/** The maximum number of positional arguments a command takes. */
export function maxArgs(cmd: CommandSpec): number {
  return cmd.maxArgs ?? (cmd.args ? 1 : 0);
}

/** "--ttl DURATION" / "-l, --selector SELECTOR" as help and man pages show it. */
export function flagLabel(name: string, f: FlagSpec): string {
  const value = f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : '';
  return `${f.short ? `-${f.short}, ` : ''}--${name}${value}`;
}

/** "ferry token create [flags] ARGS [-- COMMAND]" */
export function usageLine(cli: CliSpec, path: readonly string[], cmd: CommandSpec): string {
  if (cmd.subcommands?.length) return `${cli.name} ${path.join(' ')} <command> [flags]`;
  const hasFlags = Object.keys(flagsOf(cli, cmd)).length > 0;
  return [cli.name, ...path, hasFlags ? '[flags]' : '', cmd.args ?? '', cmd.passthrough ? `-- ${cmd.passthrough}` : ''].filter(Boolean).join(' ');
}
