import assert from 'node:assert/strict';
import { ErrorCode, FerryError } from '../../../common/src/errors.js';
import { parseParamValue, resolveParams } from '../../../common/src/plan/expand-params.js';
import { planOrThrow } from '../../../common/src/plan/plan-load.js';
import { TEST_SCHEMAS } from './test-schemas.js';

const plan = planOrThrow(`name: params
params:
  version: 1.22.0
  cloudcore_ip: ~
  replicas: { type: int, default: 1 }
  dry: false
  images: { type: list, default: [cloudcore, admission] }
  extra: { type: map, required: false }
  port: { type: int, description: CloudStream port }
steps:
  - { id: s, type: exec, args: { argv: [x] } }
`, 'params.yaml', { schemas: TEST_SCHEMAS });

describe('plan params: resolveParams', () => {
  it('merges given values, parsed by type, with defaults', () => {
    const v = resolveParams(plan, { cloudcore_ip: '10.0.0.5', replicas: '3', dry: 'true', port: '10003', extra: 'a=1, b = x=y' });
    assert.deepEqual(v, {
      version: '1.22.0', cloudcore_ip: '10.0.0.5', replicas: 3, dry: true,
      images: ['cloudcore', 'admission'], extra: { a: '1', b: 'x=y' }, port: 10003,
    });
  });

  it('leaves out optional params with no value and no default', () => {
    const v = resolveParams(plan, { cloudcore_ip: 'x', port: '1' });
    assert.equal(Object.hasOwn(v, 'extra'), false);
  });

  it('does not let callers change the plan through a default they got', () => {
    const v = resolveParams(plan, { cloudcore_ip: 'x', port: '1' });
    (v.images as string[]).push('oops');
    assert.deepEqual(plan.params.find((p) => p.name === 'images')!.default, ['cloudcore', 'admission']);
  });

  it('refuses missing required, wrongly typed and unknown params, all in one error', () => {
    assert.throws(() => resolveParams(plan, { replicas: 'three', dry: 'yes', images: '[a, b', replcas: '2' }), (e: FerryError) => {
      assert.equal(e.code, ErrorCode.InvalidArgument);
      const lines = e.message.split('\n');
      assert.match(lines[5]!, /^ {2}param "images" \(list\) is not valid YAML: \S/);
      lines[5] = '(yaml message)';
      assert.deepEqual(lines, [
        'plan "params": 6 problems with params:',
        '  unknown param "replcas" (did you mean "replicas"?); plan "params" declares cloudcore_ip, dry, extra, images, port, replicas, version',
        '  param "cloudcore_ip" is required',
        '  param "replicas" (int) must be a whole number (got "three")',
        '  param "dry" (bool) must be true or false (got "yes")',
        '(yaml message)',
        '  param "port" is required (CloudStream port)',
      ]);
      return true;
    });
  });

  it('reads lists and maps in the simple and the YAML flow forms', () => {
    assert.deepEqual(parseParamValue({ name: 'l', type: 'list' }, 'a, b,c'), { value: ['a', 'b', 'c'] });
    assert.deepEqual(parseParamValue({ name: 'l', type: 'list' }, ''), { value: [] });
    assert.deepEqual(parseParamValue({ name: 'l', type: 'list' }, '["a,b", c]'), { value: ['a,b', 'c'] });
    assert.deepEqual(parseParamValue({ name: 'm', type: 'map' }, '{site: plant-7, n: 2}'), { value: { site: 'plant-7', n: 2 } });
    assert.match(parseParamValue({ name: 'm', type: 'map' }, 'novalue').error!, /k=v pairs/);
    assert.match(parseParamValue({ name: 'm', type: 'map' }, '{a').error!, /not valid YAML/);
    assert.deepEqual(parseParamValue({ name: 'i', type: 'int' }, '-5'), { value: -5 });
    assert.match(parseParamValue({ name: 'i', type: 'int' }, '1.5').error!, /whole number/);
    assert.match(parseParamValue({ name: 'i', type: 'int' }, '99999999999999999999').error!, /whole number/);
    assert.deepEqual(parseParamValue({ name: 's', type: 'string' }, ' keep spaces '), { value: ' keep spaces ' });
  });
});
