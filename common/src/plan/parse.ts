/**
 * Reading an install plan from YAML, reporting every problem at once with
 * `file:line:col` (1-based) of the key or value it is about.
 *
 * ## The plan format
 *
 * ```yaml
 * name: kubeedge-edge                 # required; [a-z0-9][a-z0-9._-]*
 * description: KubeEdge edge node with EdgeMesh and kubectl logs/exec (offline)
 *
 * params:                             # name: default (type inferred), or the full form
 *   kubeedge_version: 1.22.0          # a string: versions stay as written
 *   cloudcore_ip: ~                   # no default: required
 *   stream_port: 10003                # int
 *   extra_images:
 *     type: list
 *     default: []
 *     description: more image tars to import from the bundle
 *
 * bundles:                            # alias: name:version (or a list of {as, name, version})
 *   edge: kubeedge-edge:1.22.0
 *
 * steps:                              # run in order; each id unique
 *   - id: import-images
 *     type: image.import
 *     args:                           # checked by the step type's schema
 *       bundle: edge                  # a declared alias
 *       images: [images/docker.io-kubeedge-edgemesh-agent-v1.17.0.tar]
 *     timeout: 10m                    # default 5m
 *     retries: 2                      # default 0
 *     retryDelay: 10s                 # default 5s
 *
 *   - id: keadm-join
 *     type: exec
 *     args:
 *       argv: ["{{ bundles.edge }}/bin/keadm", join, "--cloudcore-ipport={{ params.cloudcore_ip }}:10000",
 *              "--kubeedge-version=v{{ params.kubeedge_version }}", "--edgenode-name={{ facts.hostname }}"]
 *     # guards, run on the host first. creates: PATH skips (unchanged) when PATH exists;
 *     # unless: CMD skips (unchanged) when CMD exits 0; a string runs with /bin/sh -c, a list is argv
 *     unless: test -s /etc/kubeedge/config/edgecore.yaml && systemctl is-enabled --quiet edgecore
 *     when:                           # every label and fact must match, else skipped
 *       labels: { role: edge }
 *       facts: { os.id: ubuntu }
 *
 *   - id: enable-edge-stream
 *     type: yaml.edit
 *     args:
 *       file: /etc/kubeedge/config/edgecore.yaml
 *       set:
 *         - { path: modules.edgeStream.enable, value: true }
 *         - { path: modules.edgeStream.server, value: "{{ params.cloudcore_ip }}:{{ params.stream_port }}" }
 *
 *   - id: restart-edgecore
 *     type: systemd.unit
 *     args: { name: edgecore.service, state: restarted }
 *     onlyIf: [test, -f, /etc/kubeedge/config/edgecore.yaml]   # guard: run only when this exits 0
 * ```
 *
 * (Each step type's args are defined by its schema module in ./steps/.)
 *
 * Rules worth knowing:
 * - Unknown keys anywhere (top level, steps, params, bundles, when, args) are
 *   problems, with a "did you mean" when one is close: typos must not be ignored.
 * - Templates (`{{ params.x }}`, `{{ facts.a.b }}`, `{{ labels.k }}`,
 *   `{{ bundles.alias }}`, `| default("…")`) may appear in any string in
 *   args and guards; see expand-template.ts. Params and bundle aliases they
 *   name must be declared. Args holding a template are checked by their
 *   schema again on the host, after expansion.
 * - Plain numbers that would change when read (`1.10`, `0755`) are kept as
 *   the text written, as strings.
 * - Anchors and aliases (`&edge` / `*edge`) work; merge keys (`<<:`) do not.
 * - One document per file.
 * - YAML syntax errors are all reported, but alone: the rest of the checks
 *   run once the file parses (checking a half-parsed file misleads).
 *   Duplicate keys are not syntax errors; they are reported with the rest.
 */
import { LineCounter, parseDocument, type Node } from 'yaml';
import { parseBundles } from './parse-bundles.js';
import { parseParams } from './parse-params.js';
import { ID, parseSteps } from './parse-step.js';
import { PlanSource } from './parse-yaml.js';
import { didYouMean } from './plan-suggest.js';
import { sortProblems } from './plan-problems.js';
import type { StepSchema } from './step-schema.js';
import { STEP_SCHEMAS } from './step-registry.js';
import type { Plan, PlanProblem } from './types.js';

export const PLAN_KEYS = ['name', 'description', 'params', 'bundles', 'steps'];

export interface ParseOptions {
  /** Step types to check against; defaults to every registered type (STEP_SCHEMAS). */
  schemas?: ReadonlyMap<string, StepSchema<unknown>>;
}

export interface ParseResult {
  /** Present only when there are no problems. */
  plan?: Plan;
  /** Every problem found, sorted by position. */
  problems: PlanProblem[];
}

/**
 * Parses and validates a plan. Never throws for a bad plan: YAML syntax
 * errors, duplicate keys, wrong types, unknown keys and step types,
 * schema problems and undeclared names all come back in `problems`.
 */
export function parsePlan(text: string, file: string, opts: ParseOptions = {}): ParseResult {
  const lines = new LineCounter();
  // keepSourceTokens keeps each scalar's source text, so `1.10` is read as
  // written. Duplicate keys are found by PlanSource, with better messages.
  const doc = parseDocument(text, { keepSourceTokens: true, lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const src = new PlanSource(file, doc, lines);
  for (const e of [...doc.errors, ...doc.warnings]) {
    // The parser's messages can run on with a source excerpt; the first line says it.
    src.problems.push({ ...src.posAt(e.pos[0]), message: e.message.split('\n')[0]! });
  }
  // After a syntax error the parser's recovery guesses at the structure;
  // checking that guess would report mistakes the author never made. Every
  // syntax error is still reported, all at once.
  if (doc.errors.length) return { problems: sortProblems(src.problems) };
  src.reportDuplicateKeys();

  const root = src.resolve(doc.contents);
  if (src.isNull(root)) {
    src.problems.push({ ...src.posAt(0), message: 'plan is empty; it needs name: and steps:' });
    return { problems: sortProblems(src.problems) };
  }
  if (src.entries(root, 'a plan', true) === undefined) {
    src.problem(root, 'a plan must be a mapping with name:, steps: and so on');
    return { problems: sortProblems(src.problems) };
  }
  const entries = src.entries(root, 'a plan') ?? [];
  const get = (k: string): { node: Node | null; key: Node } | undefined => {
    const e = entries.find((x) => x.key === k);
    return e && { node: e.value, key: e.keyNode };
  };
  for (const e of entries) {
    if (!PLAN_KEYS.includes(e.key)) src.problem(e.keyNode, `unknown key "${e.key}"${didYouMean(e.key, PLAN_KEYS)}; a plan has ${PLAN_KEYS.join(', ')}`);
  }

  let name: string | undefined;
  const nameE = get('name');
  if (!nameE) src.problem(root, 'plan needs a name');
  else {
    name = src.text(nameE.node, 'name');
    if (name !== undefined && !ID.test(name)) src.problem(nameE.node, `plan name "${name}" must match [a-z0-9][a-z0-9._-]*`);
  }
  const descE = get('description');
  const description = descE && !src.isNull(descE.node) ? src.text(descE.node, 'description') : '';

  const params = parseParams(src, get('params')?.node ?? null);
  const bundles = parseBundles(src, get('bundles')?.node ?? null);
  const stepsE = get('steps');
  if (!stepsE) src.problem(root, 'plan needs steps:');
  const steps = stepsE ? parseSteps(src, stepsE.node, {
    schemas: opts.schemas ?? STEP_SCHEMAS,
    params: new Set(params.map((p) => p.name)),
    bundles: new Set(bundles.map((b) => b.as)),
  }) : [];

  const problems = sortProblems(src.problems);
  if (problems.length || name === undefined || description === undefined) return { problems };
  return { plan: { name, description, params, bundles, steps }, problems };
}
