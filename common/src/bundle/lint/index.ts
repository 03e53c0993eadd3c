/**
 * `ferry bundle lint`: offline-completeness and no-internet checks for a bundle directory.
 * See lint-bundle.ts for what is checked and how references are matched.
 */
export { lintBundle, type LintOptions } from './lint-bundle.js';
export { formatFindings, summarizeFindings, LINT_RULES, type Finding, type LintRule } from './findings.js';
export { publishedImagesFrom, type PublishedImages, type PublishedTag } from './published.js';
