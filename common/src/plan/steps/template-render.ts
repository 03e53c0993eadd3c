/**
 * `template.render`: fill a template file from a bundle with plan params,
 * host facts, labels and bundle directories, and install the result like
 * `file.install`. The language is the plan's own (common/src/plan/
 * expand-template.ts): `{{ params.x }}`, `{{ facts.os.id }}`,
 * `{{ labels.site }}`, `{{ bundles.kubeedge }}`, `| default("…")` — lookups,
 * never code. An inline `template` is a plan string like any other arg, so the
 * job runner has already expanded it for this host; the agent writes it as is.
 */
import { schema } from '../step-schema.js';
import { readAbsPath, readFileAttrs, readFileSource, type FileAttrs, type FileSource } from './file-install.js';

/** Parsed args of `template.render`. */
export interface TemplateRenderArgs extends FileAttrs {
  /** The template: a bundle file, or inline text (`{ content }` holds the `template` arg). */
  source: FileSource;
  /** Absolute host path of the rendered file. */
  dest: string;
}

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
