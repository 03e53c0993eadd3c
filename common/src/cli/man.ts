import { EXIT_CODES } from '../exit-codes.js';
import { allCommands, flagLabel, usageLine, type CliSpec, type FlagTable } from './spec.js';

/** Text for roff: backslashes escaped, no line starting with a control character. */
function text(s: string): string {
  return s.replaceAll('\\', '\\e').split('\n').map((l) => (/^[.']/.test(l) ? `\\&${l}` : l)).join('\n');
}

/** Literal command text: also hyphens as minus signs, so they copy and search as "-". */
const code = (s: string) => text(s).replaceAll('-', '\\-');

/** Markdown-ish `code` in help text becomes bold. */
const inline = (s: string) => text(s).replace(/`([^`]+)`/g, (_, c: string) => `\\fB${c.replaceAll('-', '\\-')}\\fR`);

function paragraphs(s: string): string {
  return s.trim().split(/\n\s*\n/).map((p) => inline(p.replace(/\s*\n\s*/g, ' '))).join('\n.PP\n');
}

function flags(f: FlagTable): string[] {
  return Object.entries(f).flatMap(([n, spec]) => ['.TP', `.B ${code(flagLabel(n, spec))}`, inline(`${spec.help}${spec.multiple ? ' (repeatable)' : ''}`)]);
}

/**
 * The man page (roff, man macros) of a CLI, rendered from the same table as
 * its --help. Deterministic (no date), so the committed page can be checked.
 */
export function manPage(cli: CliSpec): string {
  const out = [
    `.\\" Generated from the command table by scripts/gen-man.ts (npm run man); do not edit.`,
    `.TH ${cli.name.toUpperCase()} 1 "" "${cli.name} ${cli.version}" "Ferry Manual"`,
    '.SH NAME', `${code(cli.name)} \\- ${text(cli.summary)}`,
    '.SH SYNOPSIS', `.B ${code(cli.name)}`, `\\fIcommand\\fR ${cli.commands.some((c) => c.subcommands?.length) ? '[\\fIsubcommand\\fR] ' : ''}[\\fIflags\\fR]`,
    '.SH DESCRIPTION', paragraphs(cli.description),
    '.SH COMMANDS',
  ];
  for (const { path, spec } of allCommands(cli)) {
    out.push(`.SS "${code(`${cli.name} ${path.join(' ')}`)}"`, text(spec.summary.charAt(0).toUpperCase() + spec.summary.slice(1)) + '.');
    if (spec.subcommands?.length) {
      out.push('.PP', `Commands: ${spec.subcommands.map((s) => `\\fB${code(s.name)}\\fR`).join(', ')}.`);
      continue;
    }
    out.push('.PP', `.B ${code(usageLine(cli, path, spec))}`);
    if (spec.description) out.push('.PP', paragraphs(spec.description));
    if (spec.flags && Object.keys(spec.flags).length) out.push('.PP', 'Flags:', '.RS', ...flags(spec.flags), '.RE');
    if (spec.shared) out.push('.PP', `Also takes the ${text(cli.shared.title.toLowerCase())} (below).`);
    if (spec.examples?.length) out.push('.PP', 'Examples:', '.PP', '.RS', '.nf', ...spec.examples.map(code), '.fi', '.RE');
  }
  out.push(`.SH ${text(cli.shared.title.toUpperCase())}`, ...flags(cli.shared.flags));
  for (const n of cli.notes) out.push(`.SH ${text(n.title.toUpperCase())}`, paragraphs(n.text));
  out.push('.SH EXIT STATUS', ...EXIT_CODES.flatMap((e) => ['.TP', `.B ${e.code}`, inline(e.meaning)]));
  out.push('.SH SEE ALSO', ...cli.seeAlso.map((s, i, all) => {
    const [, page, section] = /^(.*)\((\w+)\)$/.exec(s) ?? [s, s, ''];
    return `.BR ${code(page!)} ${section ? `(${section})` : ''}${i < all.length - 1 ? ',' : ''}`;
  }));
  return out.join('\n') + '\n';
}
