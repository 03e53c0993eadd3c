/**
 * `template.render`: fill a small template with plan params, host facts and
 * labels, and install the result like `file.install`. The syntax is only
 * `{{ params.x }}`, `{{ facts.os.release }}`, `{{ labels.site }}` — lookups,
 * never code — so a plan cannot run anything through a template.
 */
import { schema } from '../step-schema.js';
import { readAbsPath, readFileAttrs, readFileSource, type FileAttrs, type FileSource } from './file-install.js';

export interface TemplateRenderArgs extends FileAttrs {
  /** The template: a bundle file, or inline text (`{ content }` holds the `template` arg). */
  source: FileSource;
  /** Absolute host path of the rendered file. */
  dest: string;
}

/** Roots a template expression may start with. */
export const TEMPLATE_ROOTS = ['params', 'facts', 'labels'] as const;

/** Schema for `template.render`. */
export const templateRenderSchema = schema<TemplateRenderArgs>(
  'template.render',
  'Render a template ({{ params.x }}, {{ facts.hostname }}, {{ labels.site }}) from a bundle or inline text to dest, like file.install',
  (r) => {
    const source = readFileSource(r, 'template');
    const dest = readAbsPath(r, 'dest');
    const attrs = readFileAttrs(r, false);
    return { source: source!, dest: dest!, ...attrs };
  },
);
