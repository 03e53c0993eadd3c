/**
 * Rendering template files for template.render with the plan's own template
 * language (common/src/plan/expand-template.ts), so a template in a bundle
 * reads exactly like a templated arg: `{{ params.x }}`, `{{ facts.os.id }}`,
 * `{{ labels.site }}`, `{{ bundles.kubeedge }}`, `| default("…")`. Lookups
 * only, no code. Other `{{ … }}` (Helm's `{{ .Values.x }}`) stay as written.
 * Missing values are errors with line:col: a config with a hole in it is
 * worse than a failed step.
 */
import { ErrorCode } from '../../../../common/src/errors.js';
import { expandString } from '../../../../common/src/plan/expand-template.js';
import type { StepContext } from '../step.js';
import { StepError } from '../step-error.js';

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  return `${before.split('\n').length}:${offset - before.lastIndexOf('\n')}`;
}

/** Renders `text` for this host; `where` names the template in messages (e.g. "cloud:templates/app.conf"). */
export function renderTemplate(text: string, ctx: Pick<StepContext, 'params' | 'facts' | 'labels' | 'bundleDir'>, where: string): string {
  const r = expandString(text, {
    params: ctx.params, facts: ctx.facts, labels: ctx.labels,
    bundleDir: (as) => { try { return ctx.bundleDir(as); } catch { return undefined; } },
  });
  if (r.errors.length) {
    // Errors start with the expression as written; find it in the text to say where it is.
    const located = r.errors.map((e) => {
      const expr = /^\{\{[\s\S]*?\}\}/.exec(e)?.[0];
      const at = expr ? text.indexOf(expr) : -1;
      return at >= 0 ? `${where}:${lineCol(text, at)}: ${e}` : `${where}: ${e}`;
    });
    throw new StepError(ErrorCode.StepTemplateInvalid, located.join('\n'),
      'declare the param or pass it with the rollout, label the host, or add | default("…") to the template');
  }
  const v = r.value;
  return typeof v === 'string' ? v : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
}
