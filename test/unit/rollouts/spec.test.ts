import assert from 'node:assert/strict';
import { formatProblems } from '../../../common/src/plan/plan-problems.js';
import { DEFAULT_STRATEGY, parseRolloutSpec } from '../../../controller/src/rollouts/spec.js';

const FULL = `name: edge-1.22
plan: kubeedge-edge
params:
  cloudcore_ip: 10.0.0.5
  stream_port: 10003
  extra: [a, b]
targets:
  selector: role=edge
  hosts: [edge-canary]
  exclude: [edge-7]
strategy:
  waves: [1, "10%", "50%", "100%"]
  maxConcurrency: "25%"
  errorBudget:
    perWave: "10%"
    total: 2
  onFailure: abort
  wait: 30s
  approval: true
  offlineTimeout: 2m
  offline: skip
  prefetch: true
`;

describe('rollout spec', () => {
  it('reads every field of a full spec', () => {
    const { spec, problems } = parseRolloutSpec(FULL, 'rollout.yaml');
    assert.deepEqual(problems, []);
    assert.equal(spec!.name, 'edge-1.22');
    assert.equal(spec!.plan, 'kubeedge-edge');
    assert.deepEqual(spec!.params, { cloudcore_ip: '10.0.0.5', stream_port: '10003', extra: '["a","b"]' });
    assert.deepEqual(spec!.targets, { selector: 'role=edge', hosts: ['edge-canary'], exclude: ['edge-7'] });
    assert.deepEqual(spec!.strategy, {
      waves: [{ count: 1 }, { percent: 10 }, { percent: 50 }, { percent: 100 }], maxConcurrency: { percent: 25 },
      errorBudget: { perWave: { percent: 10 }, total: { count: 2 } }, onFailure: 'abort', waitMs: 30_000, approval: true,
      offlineTimeoutMs: 120_000, offline: 'skip', prefetch: true,
    });
  });
  it('fills defaults: one wave of everything, budget 0, pause on failure, 5m offline timeout then fail', () => {
    const { spec } = parseRolloutSpec('plan: p\ntargets: { selector: "" }\n', 'r.yaml');
    assert.equal(spec!.name, 'p');
    assert.deepEqual(spec!.targets, { selector: '', hosts: [], exclude: [] });
    assert.deepEqual(spec!.strategy, DEFAULT_STRATEGY);
  });
  it('takes a bare amount as the total error budget', () => {
    const { spec } = parseRolloutSpec('plan: p\ntargets: { hosts: [a] }\nstrategy: { errorBudget: "5%" }\n', 'r.yaml');
    assert.deepEqual(spec!.strategy.errorBudget, { perWave: null, total: { percent: 5 } });
  });
  it('reports every problem at once with file:line:col and the field path', () => {
    const bad = `plan: p
targets:
  selectr: role=edge
strategy:
  waves: [0, "10%", "5%", "abc"]
  maxConcurrency: 0
  errorBudget: { perWave: "200%", totl: 1 }
  onFailure: retry
  wait: soon
  approval: yes please
  offline: ignore
  prefetch: 1
`;
    const { spec, problems } = parseRolloutSpec(bad, 'bad.yaml');
    assert.equal(spec, undefined);
    const text = formatProblems(problems);
    for (const re of [
      /bad\.yaml:3:3: targets: unknown key "selectr" \(did you mean "selector"\?\)/,
      /bad\.yaml:2:1: targets needs selector:|bad\.yaml:3:3: targets needs selector/,
      /bad\.yaml:5:11: strategy\.waves\[0\] must be a whole number of at least 1/,
      /bad\.yaml:5:\d+: strategy\.waves\[3\] must be a host count/,
      /strategy\.maxConcurrency must be a whole number of at least 1/,
      /strategy\.errorBudget\.perWave percentage must be above 0% and at most 100%/,
      /strategy\.errorBudget: unknown key "totl" \(did you mean "total"\?\)/,
      /bad\.yaml:8:14: strategy\.onFailure must be one of pause, abort, continue \(got "retry"\)/,
      /strategy\.wait must be a duration/,
      /strategy\.approval must be true or false/,
      /strategy\.offline must be one of fail, skip/,
      /strategy\.prefetch must be true or false/,
    ]) assert.match(text, re);
  });
  it('refuses waves that do not grow (entries are cumulative)', () => {
    const { problems } = parseRolloutSpec('plan: p\ntargets: { selector: "" }\nstrategy: { waves: ["50%", "10%", "100%"] }\n', 'r.yaml');
    assert.match(formatProblems(problems), /r\.yaml:3:\d+: strategy\.waves\[1\]: waves are cumulative/);
  });
  it('reads set selectors and reports a malformed one at its column in the file', () => {
    const ok = parseRolloutSpec('plan: p\ntargets:\n  selector: site in (plant-7,plant-9),role notin (cloud)\n', 'r.yaml');
    assert.deepEqual(ok.spec!.targets.selector, 'site in (plant-7,plant-9),role notin (cloud)');
    const plain = formatProblems(parseRolloutSpec('plan: p\ntargets:\n  selector: site in (plant-7\n', 'r.yaml').problems);
    assert.match(plain, /^r\.yaml:3:21: targets\.selector: invalid selector at column 9: the set opened here has no closing "\)"/m);
    const quoted = formatProblems(parseRolloutSpec('plan: p\ntargets: { selector: "role=edge,site<3" }\n', 'r.yaml').problems);
    assert.match(quoted, /^r\.yaml:2:37: targets\.selector: invalid selector at column 15: expected =, !=, in or notin after key "site", found "<"/m);
  });
  it('needs a plan and targets, and knows its own keys', () => {
    const { problems } = parseRolloutSpec('name: Bad Name\nplna: x\n', 'r.yaml');
    const text = formatProblems(problems);
    assert.match(text, /rollout needs plan:/);
    assert.match(text, /rollout needs targets:/);
    assert.match(text, /unknown key "plna" \(did you mean "plan"\?\)/);
  });
  it('reports YAML syntax errors alone', () => {
    const { problems } = parseRolloutSpec('plan: [unclosed\n', 'r.yaml');
    assert.ok(problems.length >= 1);
    assert.match(formatProblems(problems), /^r\.yaml:\d+:\d+: /);
  });
});
