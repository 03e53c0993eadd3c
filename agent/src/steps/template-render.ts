/**
 * `template.render` on the host: fills a template with plan params, host
 * facts and labels, then installs the result like file.install (unchanged
 * when the rendered bytes, mode and owner already match).
 */
import { readFile } from 'node:fs/promises';
import type { TemplateRenderArgs } from '../../../common/src/plan/steps/template-render.js';
import type { StepContext, StepExecutor } from './step.js';
import { sourceContent } from './file-install.js';
import { installFile } from './util/install-file.js';
import { runGuarded } from './util/step-error.js';
import { renderTemplate } from './util/template.js';

async function render(args: TemplateRenderArgs, ctx: StepContext) {
  const src = await sourceContent(ctx, args.source);
  const text = 'bytes' in src ? src.bytes.toString('utf8') : await readFile(src.file, 'utf8');
  const where = 'content' in args.source ? 'inline template' : `${args.source.bundle}:${args.source.src}`;
  const out = renderTemplate(text, { params: ctx.params, facts: ctx.facts, labels: ctx.labels }, where);
  return installFile(ctx, args.dest, { bytes: Buffer.from(out, 'utf8') }, args);
}

/** The `template.render` executor. */
export const templateRenderExecutor: StepExecutor<TemplateRenderArgs> = {
  type: 'template.render',
  run: (args, ctx) => runGuarded(() => render(args, ctx)),
};
