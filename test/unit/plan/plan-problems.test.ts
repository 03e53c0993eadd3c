import assert from 'node:assert/strict';
import { parsePlan } from '../../../common/src/plan/parse.js';
import { formatProblems } from '../../../common/src/plan/plan-problems.js';
import { TEST_SCHEMAS } from './test-schemas.js';

const opts = { schemas: TEST_SCHEMAS };

/** Every problem as "line:col message"; the file name is checked once, separately. */
function problemsOf(text: string): string[] {
  const { plan, problems } = parsePlan(text, 'plan.yaml', opts);
  assert.equal(plan, undefined, 'a plan with problems must not come back');
  for (const p of problems) assert.equal(p.file, 'plan.yaml');
  return problems.map((p) => `${p.line}:${p.col} ${p.message}`);
}

/** Asserts exactly these problems, in order: each [line:col, a piece of the message]. */
function expectProblems(text: string, expected: Array<[string, string]>): void {
  const got = problemsOf(text);
  const want = expected.map(([pos, msg]) => `${pos} …${msg}…`);
  const ok = got.length === expected.length && expected.every(([pos, msg], i) => got[i]!.startsWith(`${pos} `) && got[i]!.includes(msg));
  assert.ok(ok, `problems differ\n  got:\n    ${got.join('\n    ')}\n  want:\n    ${want.join('\n    ')}`);
}

// Line numbers are on the left for the reader; the test strips them.
const MANY_MISTAKES = `
 1 name: Bad Plan
 2 descripton: typo
 3 params:
 4   version: 1.10
 5   port: { type: int, default: "x" }
 6   mode: { type: strng }
 7 bundles:
 8   k3s: k3s:1.29.0
 9 steps:
10   - id: import
11     type: image.improt
12     args: { images: [a.tar] }
13   - type: exec
14     args: { argv: [true] }
15   - id: import
16     type: systemd.unit
17     timeout: 5x
18     retries: -1
19     args:
20       name: edgecore
21       restrat: true
22       waitActive: 9000
23   - id: edit
24     type: yaml.edit
25     tiemout: 30s
26     args:
27       file: /etc/kubeedge/config/edgecore.yaml
28       set:
29         - { path: a.b, value: 1 }
30         - { path: c }
31         - { path: d, value: x, extra: y }
32   - id: use-refs
33     type: exec
34     args:
35       argv: ["{{ bundles.kubeedge }}/bin/keadm", "--version={{ params.versoin }}", "{{ param.x }}", "{{ version }}"]
36     creates: "{{ bundles.k3s }}/done"
37     when: { labels: { site: a }, fact: {} }
38   - id: bundle-arg
39     type: image.import
40     timeout: 30
41     args: { bundle: edgemesh, images: ["{{ facts.arch | upper }}"] }
42   - id: Upper_Case
43     type: exec
44     args: { argv: [x] }
45     retryDelay: soon
46     unless: 7
47     when: { facts: { os.id: [a] } }
`.slice(1).replace(/^ *\d+ /gm, '');

describe('plan parsing: many mistakes at once', () => {
  it('reports every mistake in one pass, each at the key or value it is about', () => {
    expectProblems(MANY_MISTAKES, [
      ['1:7', 'plan name "Bad Plan" must match'],
      ['2:1', 'unknown key "descripton" (did you mean "description"?)'],
      ['5:31', 'default of param "port" must be a whole number'],
      ['6:17', 'type of param "mode" must be one of string, int, bool, list, map (got "strng") (did you mean "string"?)'],
      ['11:11', 'unknown step type "image.improt" (did you mean "image.import"?); known types: exec, image.import, systemd.unit, yaml.edit'],
      ['13:5', 'step needs an id'],
      ['14:19', 'args.argv: "argv" must be a list of strings'],
      ['15:9', 'duplicate step id "import" (first used at line 10)'],
      ['17:14', 'timeout "5x" is not a duration'],
      ['18:14', 'retries must be a whole number, 0 or more'],
      ['21:7', 'args.restrat: unknown argument "restrat"'],
      ['22:19', 'args.waitActive: "waitActive" must be at most 600'],
      ['25:5', 'unknown step key "tiemout" (did you mean "timeout"?)'],
      ['30:11', 'args.set[1].value: missing required value "value"'],
      ['31:32', 'args.set[2].extra: unknown argument "extra"'],
      ['35:14', '{{ bundles.kubeedge }}: undeclared bundle "kubeedge"; declare it under bundles:'],
      ['35:50', '{{ params.versoin }}: undeclared param "versoin" (did you mean "version"?)'],
      ['35:84', '{{ param.x }}: unknown template root "param" (did you mean "params"?)'],
      ['35:101', '{{ version }} is not expanded; write {{ params.version }}'],
      ['37:34', 'unknown key "fact" in when (did you mean "facts"?)'],
      ['40:14', 'timeout needs a unit, e.g. 30s'],
      ['41:21', 'undeclared bundle "edgemesh"; declare it under bundles:'],
      ['41:40', '{{ facts.arch | upper }}: unknown filter "upper"'],
      ['42:9', 'step id "Upper_Case" must match'],
      ['45:17', 'retryDelay "soon" is not a duration'],
      ['46:13', 'unless must be a command'],
      ['47:29', 'when.facts.os.id must be a string'],
    ]);
  });

  it('formats problems as sorted file:line:col lines', () => {
    const text = formatProblems([
      { file: 'b.yaml', line: 1, col: 1, message: 'third' },
      { file: 'a.yaml', line: 10, col: 2, message: 'second' },
      { file: 'a.yaml', line: 2, col: 9, message: 'first' },
    ]);
    assert.equal(text, 'a.yaml:2:9: first\na.yaml:10:2: second\nb.yaml:1:1: third');
    assert.equal(formatProblems([]), '');
  });
});

describe('plan parsing: YAML-level problems', () => {
  it('reports YAML syntax errors at their position, all of them, and nothing built on the broken parse', () => {
    expectProblems('name: x\nsteps:\n  - id: a\n    type: exec\n    args: { argv: [a, b }\n', [
      ['5:25', 'Flow sequence in block collection must be sufficiently indented and end with a ]'],
      ['5:26', 'Flow map in block collection must be sufficiently indented and end with a }'],
    ]);
    expectProblems('name: x\nsteps:\n\t- id: a\n', [['3:1', 'Tabs are not allowed as indentation']]);
    expectProblems('name: x\n---\nname: y\n', [['2:1', 'Source contains multiple documents']]);
  });

  it('reports every duplicate key, at the repeat, naming the first, alongside other problems', () => {
    expectProblems('name: x\nname: y\nsteps:\n  - id: a\n    type: exec\n    typo: 1\n    args:\n      argv: [x]\n      argv: [y]\n', [
      ['2:1', 'duplicate key "name" (first at line 1)'],
      ['6:5', 'unknown step key "typo" (did you mean "type"?)'],
      ['9:7', 'duplicate key "argv" (first at line 8)'],
    ]);
  });

  it('refuses an empty file, a non-mapping plan, and a plan without name or steps', () => {
    expectProblems('', [['1:1', 'plan is empty']]);
    expectProblems('# only a comment\n', [['1:1', 'plan is empty']]);
    expectProblems('- a\n', [['1:1', 'a plan must be a mapping']]);
    expectProblems('description: d\n', [['1:1', 'plan needs a name'], ['1:1', 'plan needs steps:']]);
    expectProblems('name: x\nsteps: []\n', [['2:8', 'steps is empty']]);
    expectProblems('name: x\nsteps: {a: 1}\n', [['2:8', 'steps must be a list']]);
  });
});

describe('plan parsing: params and bundles sections', () => {
  it('checks param names, full-form keys, types of defaults and contradictions', () => {
    expectProblems(`name: x
params:
  9lives: 1
  a: { type: int, default: 1.5 }
  b: { type: bool, default: "yes" }
  c: { type: list, default: x }
  d: { typ: string }
  e: { default: 1, required: true }
  f: { type: string, default: true }
steps:
  - { id: s, type: exec, args: { argv: [x] } }
`, [
      ['3:3', 'param name "9lives" must start with a letter'],
      ['4:28', 'default of param "a" must be a whole number'],
      ['5:29', 'default of param "b" must be true or false'],
      ['6:29', 'default of param "c" must be a list'],
      ['7:8', 'unknown key "typ" in param "d" (did you mean "type"?)'],
      ['8:30', 'param "e" is required and has a default'],
      ['9:31', 'default of param "f" must be a string'],
    ]);
  });

  it('checks bundle aliases, names, versions and duplicates in both forms', () => {
    expectProblems(`name: x
bundles:
  k3s: k3s
  ok: kubeedge:1.22.0
  Bad.Alias: kubeedge:1.22.0
steps:
  - { id: s, type: exec, args: { argv: [x] } }
`, [
      ['3:8', 'bundle "k3s" must be name:version'],
      ['5:3', 'bundle alias "Bad.Alias" must start with a letter'],
    ]);
    expectProblems(`name: x
bundles:
  - { as: a, name: k3s, version: 1.29.0 }
  - { as: a, name: other, version: "2" }
  - { name: kube.edge, version: 1.0.0 }
  - { as: c, name: UPPER, verison: 1 }
steps:
  - { id: s, type: exec, args: { argv: [x] } }
`, [
      ['4:5', 'bundle alias "a" is used twice (first at line 3)'],
      ['5:5', 'bundle "kube.edge" needs as:'],
      ['6:5', 'bundle needs a version'],
      ['6:20', 'bundle name "UPPER" must match'],
      ['6:27', 'unknown key "verison" in bundle (did you mean "version"?)'],
    ]);
  });
});
