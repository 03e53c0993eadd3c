import assert from 'node:assert/strict';
import { parseDocument } from 'yaml';
import { diffLines, merge3, unifiedDiff } from '../../../agent/src/steps/util/text-diff.js';
import { render, styleOf, writeBack } from '../../../agent/src/steps/util/yaml-text.js';
import { TreeEditor } from '../../../agent/src/steps/util/yaml-tree.js';

const lines = (n: number, f = (i: number) => `line ${i}`) => Array.from({ length: n }, (_, i) => `${f(i + 1)}\n`).join('');

describe('text diffs', () => {
  it('finds a minimal edit script', () => {
    const ops = diffLines(['a', 'b', 'c', 'd'], ['a', 'x', 'c', 'd', 'e']);
    assert.deepEqual(ops.map((o) => o.op).join(''), '=-+==+');
  });

  it('writes unified hunks with context, separate when far apart, and marks a missing final newline', () => {
    const a = lines(20);
    const b = a.replace('line 2\n', 'line two\n').replace('line 19\n', 'line nineteen\n');
    assert.equal(unifiedDiff(a, b, 'a', 'b'), [
      '--- a', '+++ b',
      '@@ -1,5 +1,5 @@', ' line 1', '-line 2', '+line two', ' line 3', ' line 4', ' line 5',
      '@@ -16,5 +16,5 @@', ' line 16', ' line 17', ' line 18', '-line 19', '+line nineteen', ' line 20', '',
    ].join('\n'));
    assert.equal(unifiedDiff('x\n', 'x\ny', 'a', 'b'), '--- a\n+++ b\n@@ -1,1 +1,2 @@\n x\n+y\n\\ No newline at end of file\n');
    assert.equal(unifiedDiff('', 'new\n', '/dev/null', 'f'), '--- /dev/null\n+++ f\n@@ -0,0 +1,1 @@\n+new\n');
    assert.equal(unifiedDiff('same\n', 'same\n', 'a', 'b'), '');
  });

  it('merges three ways, keeping the original spacing on edited lines', () => {
    const base = 'a: 1 # one\nb: 2\nc: 3 # three\n';
    const ours = 'a: 1      # one\nb: 2\nc: 3      # three\n';
    const theirs = 'a: 1 # one\nb: 5\nc: 4 # three\nd: 6\n';
    assert.equal(merge3(base, ours, theirs), 'a: 1      # one\nb: 5\nc: 4      # three\nd: 6\n');
  });
});

describe('yaml layout preservation', () => {
  it('keeps 4-space indents, indented lists, flow maps, quoting and aligned comments outside the edit', () => {
    const src = [
      '# site overrides',
      'server:',
      '    host: "10.0.0.1"        # quoted stays quoted',
      '    ports:',
      '        - 80',
      '        - 443   # tls',
      '    opts: {a: 1, b: [x, y]}',
      '',
      '    retries: 3              # aligned',
      '    timeout: 30s            # aligned',
      '',
    ].join('\n');
    const doc = parseDocument(src);
    const opts = styleOf([doc], src);
    const before = render([doc], opts);
    const ed = new TreeEditor(doc, () => '?');
    ed.set(['server', 'host'], '10.0.0.2');
    ed.set(['server', 'ports', 2], 8443);
    ed.set(['server', 'tls', 'enable'], true);
    const out = writeBack(src, before, [doc], opts, 'x');
    assert.equal(out.relaid, false);
    assert.equal(out.text, src
      .replace('"10.0.0.1"        #', '"10.0.0.2"        #')
      .replace('        - 443   # tls\n', '        - 443   # tls\n        - 8443\n')
      .replace('    timeout: 30s            # aligned\n', '    timeout: 30s            # aligned\n    tls:\n        enable: true\n'));
  });
});
