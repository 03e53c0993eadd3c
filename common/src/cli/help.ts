import { exitCodeHelp } from '../exit-codes.js';
import { flagLabel, leaves, usageLine, type CliSpec, type CommandSpec, type FlagTable } from './spec.js';

const WIDTH = 80;

/** Word-wraps paragraphs (separated by blank lines) to `width`, each line indented. */
export function wrap(text: string, indent = 2, width = WIDTH): string {
  const pad = ' '.repeat(indent);
  return text.trim().split(/\n\s*\n/).map((para) => {
    const lines: string[] = [];
    let line = '';
    for (const word of para.split(/\s+/).filter(Boolean)) {
      if (line && pad.length + line.length + 1 + word.length > width) {
        lines.push(pad + line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    if (line) lines.push(pad + line);
    return lines.join('\n');
  }).join('\n\n');
}

/** Two columns: labels padded to a common width (capped), text after. */
function columns(rows: Array<[string, string]>, indent = 2): string {
  const w = Math.min(30, Math.max(0, ...rows.map(([l]) => l.length)));
  const hang = ' '.repeat(indent + w + 2);
  // The text column wraps within the width, continuing under itself.
  const text = (t: string) => wrap(t, indent + w + 2, WIDTH).slice(indent + w + 2);
  return rows.map(([l, t]) => `${' '.repeat(indent)}${l.length > w ? `${l}\n${hang}` : l.padEnd(w)}  ${text(t)}`).join('\n');
}

function flagRows(flags: FlagTable): Array<[string, string]> {
  return Object.entries(flags).map(([n, f]) => [flagLabel(n, f), `${f.help}${f.multiple ? ' (repeatable)' : ''}`]);
}

const HELP_ROW: [string, string] = ['-h, --help', 'show this help'];

/** `ferry --help`: every command on one line, the notes, the exit codes. */
export function cliHelp(cli: CliSpec): string {
  const sub = cli.commands.some((c) => c.subcommands?.length) ? ' [<subcommand>]' : '';
  const rows = leaves(cli).map(({ path, spec }): [string, string] => [path.join(' '), spec.summary]);
  const parts = [
    `${cli.name} ${cli.version} — ${cli.summary}`,
    `Usage:\n  ${cli.name} <command>${sub} [flags]`,
    wrap(cli.description, 0),
    `Commands:\n${columns(rows)}`,
    `${cli.shared.title}:\n${columns(flagRows(cli.shared.flags))}`,
    ...cli.notes.map((n) => `${n.title}:\n${wrap(n.text)}`),
    `Run \`${cli.name} help <command>${sub}\` or \`${cli.name} <command>${sub} --help\`\nfor a command's flags and examples.`,
    exitCodeHelp().trimEnd(),
  ];
  return parts.join('\n\n') + '\n';
}

/** `ferry rollout --help` (a group) or `ferry rollout create --help` (a command). */
export function commandHelp(cli: CliSpec, path: readonly string[], cmd: CommandSpec): string {
  const name = `${cli.name} ${path.join(' ')}`;
  const parts = [`${name} — ${cmd.summary}`, `Usage:\n  ${usageLine(cli, path, cmd)}`];
  if (cmd.description) parts.push(wrap(cmd.description));
  if (cmd.subcommands?.length) {
    parts.push(`Commands:\n${columns(cmd.subcommands.map((s) => [s.name, s.summary]))}`);
    parts.push(`Run \`${name} <command> --help\` for a command's flags and examples.`);
  } else {
    const own = cmd.flags ?? {};
    parts.push(`Flags:\n${columns([...flagRows(own), HELP_ROW])}`);
    if (cmd.shared) {
      const shared = Object.fromEntries(Object.entries(cli.shared.flags).filter(([n]) => !(n in own)));
      parts.push(`${cli.shared.title}:\n${columns(flagRows(shared))}`);
    }
  }
  if (cmd.examples?.length) parts.push(`Examples:\n${cmd.examples.map((e) => `  ${e}`).join('\n')}`);
  return parts.join('\n\n') + '\n';
}
