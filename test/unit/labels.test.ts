import assert from 'node:assert/strict';
import { parseLabel, parseSelector } from '../../common/src/labels.js';
import { FerryError } from '../../common/src/errors.js';

describe('labels and selectors', () => {
  it('parses key=value and rejects malformed labels with a hint', () => {
    assert.deepEqual(parseLabel('site=plant-7'), ['site', 'plant-7']);
    assert.throws(() => parseLabel('site'), (e: FerryError) => e.code === 'INVALID_ARGUMENT' && /key=value/.test(e.message));
    assert.throws(() => parseLabel('bad key=x'), /label key/);
    assert.throws(() => parseLabel('k=has space'), /label value/);
  });

  it('matches equality, inequality, existence and absence terms', () => {
    const l = { site: 'plant-7', role: 'edge', gpu: '' };
    assert.equal(parseSelector('').matches(l), true);
    assert.equal(parseSelector('site=plant-7').matches(l), true);
    assert.equal(parseSelector('site==plant-7,role=edge').matches(l), true);
    assert.equal(parseSelector('site=plant-8').matches(l), false);
    assert.equal(parseSelector('role!=cloud').matches(l), true);
    assert.equal(parseSelector('role!=edge').matches(l), false);
    assert.equal(parseSelector('gpu').matches(l), true);
    assert.equal(parseSelector('!gpu').matches(l), false);
    assert.equal(parseSelector('!drain').matches(l), true);
  });

  it('rejects selectors it does not understand', () => {
    assert.throws(() => parseSelector('a b=c'), /label key/);
  });
});
