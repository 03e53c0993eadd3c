/**
 * What `ferry bundle lint` reports, and how it prints it. The printed form is the one
 * compilers use (`file:line:col: error [rule] message`), so editors and CI annotators can
 * jump to the line.
 */

/** One problem found in a bundle. `line` and `col` are 1-based. */
export interface Finding {
  severity: 'error' | 'warning';
  rule: LintRule;
  /** Bundle-relative POSIX path; members of a chart archive read `chart.tgz!/chart/values.yaml`. */
  file: string;
  line: number;
  col: number;
  message: string;
  hint?: string;
}

/**
 * The rules. Names are stable (they appear in `lint.ignore` in ferry-bundle.yaml).
 *   - image-missing       error: a referenced image is not in the bundle (after rewrites)
 *   - image-unresolved    warning: an image reference lint cannot evaluate (variables, helpers)
 *   - image-invalid       warning: text in an image position that is not a valid reference
 *   - image-tag           warning: `:latest` or no tag
 *   - bundle-path-missing error: a plan imports a tar path/glob of this bundle that matches no file
 *   - network-url         error: an http(s) URL to a host outside the site
 *   - network-command     error: a command that reaches for the internet (pull, curl, apt-get…)
 *   - network-unresolved  warning: a download command whose target lint cannot see
 *   - yaml-invalid        error: a YAML file that does not parse
 *   - config-invalid      error: a problem in ferry-bundle.yaml
 */
export const LINT_RULES = [
  'image-missing',
  'image-unresolved',
  'image-invalid',
  'image-tag',
  'bundle-path-missing',
  'network-url',
  'network-command',
  'network-unresolved',
  'yaml-invalid',
  'config-invalid',
] as const;

/** A rule name. */
export type LintRule = (typeof LINT_RULES)[number];

/** A source position, 1-based. */
export interface Position {
  file: string;
  line: number;
  col: number;
}

/** Stable order: by file (byte order), line, column, then rule. */
export function compareFindings(a: Finding, b: Finding): number {
  if (a.file !== b.file) return Buffer.compare(Buffer.from(a.file), Buffer.from(b.file));
  return a.line - b.line || a.col - b.col || (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0) || (a.message < b.message ? -1 : a.message > b.message ? 1 : 0);
}

/** Drop exact duplicates (same rule, place and message), e.g. a chart value reached from two templates. */
export function dedupeFindings(findings: readonly Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const k = `${f.rule}\0${f.file}\0${f.line}\0${f.col}\0${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * One line per finding, `file:line:col: severity [rule] message`, with the hint (if any) on an
 * indented line below; sorted, no trailing summary (the CLI adds counts and the exit code).
 */
export function formatFindings(findings: readonly Finding[]): string {
  return [...findings]
    .sort(compareFindings)
    .map((f) => `${f.file}:${f.line}:${f.col}: ${f.severity} [${f.rule}] ${f.message}${f.hint ? `\n  hint: ${f.hint}` : ''}`)
    .join('\n');
}

/** Counts, for a summary line: `2 errors, 1 warning`. */
export function summarizeFindings(findings: readonly Finding[]): string {
  const e = findings.filter((f) => f.severity === 'error').length;
  const w = findings.length - e;
  return `${e} error${e === 1 ? '' : 's'}, ${w} warning${w === 1 ? '' : 's'}`;
}
