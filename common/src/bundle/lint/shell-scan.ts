/**
 * A small POSIX-shell tokenizer: enough to find simple commands and their words, with source
 * offsets, in install scripts. Not a shell: it knows quoting, escapes, comments, line
 * continuations, `$(…)`/backtick substitutions (scanned recursively, so
 * `V=$(curl https://x)` is seen), redirections (their targets are not arguments) and here-
 * documents (their bodies are returned separately: they are data, often YAML, not commands).
 * Control-flow keywords are left to the caller to strip.
 */

/** One word after quote removal. `expand` says it contains `$…` or a substitution. */
export interface ShellWord {
  text: string;
  /** Source offsets of the word: [start, end). */
  start: number;
  end: number;
  expand: boolean;
}

/** A simple command (pipelines and lists are split into their commands). */
export interface ShellCommand {
  words: ShellWord[];
}

/** Result of {@link scanShell}: commands, and here-document bodies as [start, end) offsets. */
export interface ShellScan {
  commands: ShellCommand[];
  heredocs: Array<{ start: number; end: number }>;
}

const SEPARATORS = new Set([';', '&', '|', '(', ')']);

/** Offset just past the `)` closing a `$(` whose body starts at `i` (or `to` if unclosed). */
function matchParen(src: string, i: number, to: number): number {
  let depth = 1;
  while (i < to) {
    const c = src[i]!;
    if (c === '\\') i += 2;
    else if (c === "'") i = closeAt(src, i + 1, to, "'") + 1;
    else if (c === '"') i = closeAt(src, i + 1, to, '"') + 1;
    else if (c === '(') (depth++, i++);
    else if (c === ')') {
      if (--depth === 0) return i + 1;
      i++;
    } else i++;
  }
  return to;
}

/** Index of the closing quote `q` from `i` (honouring backslashes unless single-quoted), or `to`. */
function closeAt(src: string, i: number, to: number, q: string): number {
  while (i < to && src[i] !== q) i += q !== "'" && src[i] === '\\' ? 2 : 1;
  return Math.min(i, to);
}

/** Scan `src[from, to)`. */
export function scanShell(src: string, from = 0, to = src.length): ShellScan {
  const out: ShellScan = { commands: [], heredocs: [] };
  let words: ShellWord[] = [];
  let word: ShellWord | undefined;
  let dropNext: 'redirect' | 'heredoc' | 'heredoc-strip' | undefined;
  const pending: Array<{ delim: string; strip: boolean }> = [];

  const begin = (at: number) => (word ??= { text: '', start: at, end: at, expand: false });
  const endWord = (at: number) => {
    if (!word) return;
    word.end = at;
    if (dropNext === 'heredoc' || dropNext === 'heredoc-strip') pending.push({ delim: word.text, strip: dropNext === 'heredoc-strip' });
    else if (!dropNext) words.push(word);
    dropNext = undefined;
    word = undefined;
  };
  const endCommand = (at: number) => {
    endWord(at);
    if (words.length > 0) out.commands.push({ words });
    words = [];
  };
  const substitution = (innerFrom: number, innerTo: number) => {
    const inner = scanShell(src, innerFrom, innerTo);
    out.commands.push(...inner.commands);
    out.heredocs.push(...inner.heredocs);
  };

  let i = from;
  while (i < to) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\r') {
      endWord(i++);
    } else if (c === '\n') {
      endCommand(i++);
      for (const h of pending.splice(0)) i = skipHeredoc(src, i, to, h, out);
    } else if (c === '\\') {
      if (src[i + 1] === '\n') i += 2;
      else {
        begin(i).text += src[i + 1] ?? '';
        i += 2;
      }
    } else if (c === '#' && !word) {
      while (i < to && src[i] !== '\n') i++;
    } else if (c === "'") {
      const j = closeAt(src, i + 1, to, "'");
      begin(i).text += src.slice(i + 1, j);
      i = j + 1;
    } else if (c === '"') {
      const w = begin(i);
      const j = closeAt(src, i + 1, to, '"');
      for (let k = i + 1; k < j; k++) {
        const d = src[k]!;
        if (d === '\\' && '$`"\\\n'.includes(src[k + 1] ?? '')) w.text += src[++k] === '\n' ? '' : src[k]!;
        else if (d === '$' && src[k + 1] === '(') {
          const e = matchParen(src, k + 2, j);
          substitution(k + 2, e - 1);
          w.text += src.slice(k, e);
          w.expand = true;
          k = e - 1;
        } else {
          if (d === '$' || d === '`') w.expand = true;
          w.text += d;
        }
      }
      i = j + 1;
    } else if (c === '`') {
      const j = closeAt(src, i + 1, to, '`');
      substitution(i + 1, j);
      const w = begin(i);
      w.text += src.slice(i, j + 1);
      w.expand = true;
      i = j + 1;
    } else if (c === '$') {
      const w = begin(i);
      w.expand = true;
      let j = i + 1;
      if (src[j] === '(' && src[j + 1] !== '(') {
        j = matchParen(src, j + 1, to);
        substitution(i + 2, j - 1);
      } else if (src[j] === '(') j = matchParen(src, j + 2, to) + 1;
      else if (src[j] === '{') j = closeAt(src, j, to, '}') + 1;
      w.text += src.slice(i, j);
      i = j;
    } else if (c === '<' || c === '>') {
      if (word && /^\d+$/.test(word.text)) word = undefined; // `2>` : the fd is not an argument
      endWord(i);
      let j = i + 1;
      if (c === '<' && src[j] === '<' && src[j + 1] !== '<') {
        j++;
        const strip = src[j] === '-';
        if (strip) j++;
        dropNext = strip ? 'heredoc-strip' : 'heredoc';
      } else {
        while (j < to && '<>&|'.includes(src[j]!)) j++;
        dropNext = 'redirect';
      }
      i = j;
    } else if (SEPARATORS.has(c)) {
      endCommand(i++);
    } else {
      begin(i).text += c;
      i++;
    }
  }
  endCommand(to);
  return out;
}

/** Skip a here-document body starting at `i` (the line after the `<<` command); record it. */
function skipHeredoc(src: string, i: number, to: number, h: { delim: string; strip: boolean }, out: ShellScan): number {
  const start = i;
  while (i < to) {
    let eol = src.indexOf('\n', i);
    if (eol < 0 || eol > to) eol = to;
    const line = src.slice(i, eol);
    if ((h.strip ? line.replace(/^\t+/, '') : line) === h.delim) {
      out.heredocs.push({ start, end: i });
      return Math.min(eol + 1, to);
    }
    i = eol + 1;
  }
  out.heredocs.push({ start, end: to });
  return to;
}
