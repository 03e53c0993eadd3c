/**
 * `template.render` on the host: fills a bundle template with plan params,
 * host facts, labels and bundle directories, then installs the result like
 * file.install (unchanged when the rendered bytes, mode and owner already
 * match). An inline `template` arrives already expanded by the job runner
 * (it expands every arg), so it is written as given — expanding it twice
 * would undo escapes such as {{ "{{" }}.
 */
import { readFile } from 'node:fs/promises';
import type { TemplateRenderArgs } from '../../../common/src/plan/steps/template-render.js';
import type { StepContext, StepExecutor } from './step.js';
import { sourceContent } from './file-install.js';
import { installFile } from './util/install-file.js';
import { guarded } from './step-error.js';
import { renderTemplate } from './util/template.js';

async function render(args: TemplateRenderArgs, ctx: StepContext) {
  if ('content' in args.source) return installFile(ctx, args.dest, { bytes: Buffer.from(args.source.content, 'utf8') }, args);
  const src = await sourceContent(ctx, args.source);
  const text = 'bytes' in src ? src.bytes.toString('utf8') : await readFile(src.file, 'utf8');
  const out = renderTemplate(text, ctx, `${args.source.bundle}:${args.source.src}`);
  return installFile(ctx, args.dest, { bytes: Buffer.from(out, 'utf8') }, args);
}

/** The `template.render` executor. */
export const templateRenderExecutor: StepExecutor<TemplateRenderArgs> = {
  type: 'template.render',
  run: (args, ctx) => guarded(ctx.signal, () => render(args, ctx)),
};
