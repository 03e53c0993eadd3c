import assert from 'node:assert/strict';
import { parseLabel, parseSelector, selectorProblem } from '../../common/src/labels.js';
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

  it('matches set terms as kubectl does: in needs the key, notin also holds without it', () => {
    const l = { site: 'plant-7', role: 'edge' };
    assert.equal(parseSelector('site in (plant-7,plant-9)').matches(l), true);
    assert.equal(parseSelector('site in (plant-8,plant-9)').matches(l), false);
    assert.equal(parseSelector('rack in (r1)').matches(l), false, 'in: an agent without the key is not in the set');
    assert.equal(parseSelector('role notin (cloud)').matches(l), true);
    assert.equal(parseSelector('role notin (cloud, edge)').matches(l), false);
    assert.equal(parseSelector('rack notin (r1)').matches(l), true, 'notin: an agent without the key is not in the set');
    assert.equal(parseSelector('rack!=r1').matches(l), true, '!= also holds without the key');
    // Commas inside parentheses belong to the set; outside they separate terms.
    const s = parseSelector(' site in ( plant-7 , plant-9 ),role notin (cloud),!drain, role = edge ');
    assert.deepEqual(s.requirements, [
      { op: 'in', key: 'site', values: ['plant-7', 'plant-9'] },
      { op: 'notin', key: 'role', values: ['cloud'] },
      { op: 'absent', key: 'drain' },
      { op: 'eq', key: 'role', value: 'edge' },
    ]);
    assert.equal(s.matches(l), true);
    assert.equal(s.matches({ ...l, drain: 'yes' }), false);
  });

  it('keeps the existing forms: ==, empty values, keys named in/notin, prefixed keys', () => {
    assert.deepEqual(parseSelector('gpu=').requirements, [{ op: 'eq', key: 'gpu', value: '' }]);
    assert.deepEqual(parseSelector('in=x,notin').requirements, [{ op: 'eq', key: 'in', value: 'x' }, { op: 'exists', key: 'notin' }]);
    assert.deepEqual(parseSelector('ferry/arch=amd64').requirements, [{ op: 'eq', key: 'ferry/arch', value: 'amd64' }]);
    assert.equal(parseSelector('  ').empty, true);
    assert.equal(parseSelector('site in (a)').empty, false);
  });

  /** The problem's column and message, and that parseSelector throws the same with a caret. */
  function problem(text: string): [number, string] {
    const p = selectorProblem(text);
    assert.ok(p, `"${text}" should not parse`);
    assert.throws(() => parseSelector(text), (e: FerryError) => {
      assert.equal(e.code, 'INVALID_ARGUMENT');
      assert.ok(e.message.startsWith(`invalid selector at column ${p.column}: ${p.message}`), e.message);
      assert.ok(e.message.endsWith(`\n  ${text}\n  ${' '.repeat(p.column - 1)}^`), e.message);
      assert.match(e.hint ?? '', /key in \(v1,v2\)/);
      return true;
    });
    return [p.column, p.message];
  }

  it('reports malformed selectors at the exact column, with what was expected', () => {
    assert.deepEqual(problem('a b=c'), [3, 'expected =, !=, in or notin after key "a", found "b"']);
    assert.deepEqual(problem('site=a b'), [8, 'expected "," before the next term, found "b"']);
    assert.deepEqual(problem('site in (a,b'), [9, 'the set opened here has no closing ")"']);
    assert.deepEqual(problem('site in a,b'), [9, 'expected "(" after in, as in "in (a,b)", found "a"']);
    assert.deepEqual(problem('site in ()'), [10, 'an in set needs at least one value']);
    assert.deepEqual(problem('site notin (a,,b)'), [15, 'expected a value in the set, found ","']);
    assert.deepEqual(problem('site in (a b)'), [12, 'expected "," or ")" in the set, found "b"']);
    assert.deepEqual(problem('role=edge,'), [11, 'expected a term after ","']);
    assert.deepEqual(problem(',role=edge'), [1, 'expected a label key, found ","']);
    assert.deepEqual(problem('role=ed&ge'), [8, '"&" cannot be in a label value (values are up to 63 of A-Z a-z 0-9 . _ : / -)']);
    assert.deepEqual(problem('site within (a)'), [6, 'expected =, !=, in or notin after key "site", found "within"']);
    assert.deepEqual(problem('site<3'), [5, 'expected =, !=, in or notin after key "site", found "<"']);
    assert.deepEqual(problem('!drain=yes'), [7, '"!drain" means "has no drain label" and takes no value; write drain!=VALUE to compare']);
    assert.equal(problem('-bad=1')[0], 1);
    assert.match(problem('-bad=1')[1], /label key "-bad" is invalid/);
    assert.deepEqual(problem(`k=${'v'.repeat(64)}`), [3, `label value "${'v'.repeat(64)}" is longer than 63 characters`]);
  });
});
