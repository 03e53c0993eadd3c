/**
 * The template language of template.render: `{{ params.x }}`,
 * `{{ facts.os.release }}`, `{{ labels.site }}`, `{{ facts.ips[0] }}`. Only
 * lookups — no expressions, filters or code — so rendering cannot run
 * anything. Missing values are errors (a config with an empty hole is worse
 * than a failed step). `{{ ... }}` that does not start with a name (Helm's
 * `{{ .Values.x }}`, `{{- if }}`) is left as written.
 */
import { parseYamlPath } from '../../../../common/src/plan/steps/yaml-edit.js';
import { TEMPLATE_ROOTS } from '../../../../common/src/plan/steps/template-render.js';
import { StepCode, StepError } from './step-error.js';

export type TemplateVars = Record<(typeof TEMPLATE_ROOTS)[number], unknown>;

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `${line}:${offset - before.lastIndexOf('\n')}`;
}

function fail(where: string, text: string, offset: number, message: string, hint: string): never {
  throw new StepError(StepCode.TemplateInvalid, `${where}:${lineCol(text, offset)}: ${message}`, hint);
}

/** Renders `text`; `where` names the template in messages (bundle path or "inline template"). */
export function renderTemplate(text: string, vars: TemplateVars, where: string): string {
  return text.replace(/\{\{([\s\S]*?)\}\}/g, (whole, inner: string, offset: number) => {
    const expr = inner.trim();
    if (!/^[A-Za-z_]/.test(expr)) return whole;
    let path: Array<string | number>;
    try {
      path = parseYamlPath(expr);
    } catch (e) {
      return fail(where, text, offset, `cannot read {{ ${expr} }}: ${(e as Error).message}`, 'write lookups like {{ params.cloudcoreIP }} or {{ facts.hostname }}');
    }
    const [root, ...rest] = path;
    if (!(TEMPLATE_ROOTS as readonly unknown[]).includes(root)) {
      return fail(where, text, offset, `unknown name "${String(root)}" in {{ ${expr} }}`, `start lookups with ${TEMPLATE_ROOTS.join('., ')}.`);
    }
    let v: unknown = vars[root as keyof TemplateVars];
    for (const seg of rest) v = v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[seg] : undefined;
    if (v === undefined || v === null) {
      return fail(where, text, offset, `{{ ${expr} }} has no value on this host`,
        root === 'params' ? 'set the parameter in the plan or rollout' : `check the name against this host's ${String(root)} (ferry agent show)`);
    }
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}
