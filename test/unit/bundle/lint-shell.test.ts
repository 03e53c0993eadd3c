import assert from 'node:assert/strict';
import { internalHostMatcher, findUrls, LineIndex } from '../../../common/src/bundle/lint/network.js';
import { scanShell } from '../../../common/src/bundle/lint/shell-scan.js';

const cmds = (src: string) => scanShell(src).commands.map((c) => c.words.map((w) => w.text));

describe('bundle/lint: shell tokenizer and hosts', () => {
  it('splits commands on separators, keeps quoting, drops comments and redirect targets', () => {
    assert.deepEqual(cmds(`a b 'c d' "e $F" g\\ h # comment
x=1 y && z || w; v | u & t
cat <in >out 2>&1 2> err >> log
if [ -f x ]; then echo "#not a comment"; fi
`), [
      ['a', 'b', 'c d', 'e $F', 'g h'],
      ['x=1', 'y'], ['z'], ['w'], ['v'], ['u'], ['t'],
      ['cat'],
      ['if', '[', '-f', 'x', ']'], ['then', 'echo', '#not a comment'], ['fi'],
    ]);
  });

  it('joins continuation lines and records word offsets in the original text', () => {
    const src = 'keadm init \\\n  --kubeedge-version=v1.22.0 \\\n  --advertise-address="$IP"\n';
    const [c] = scanShell(src).commands;
    assert.deepEqual(c!.words.map((w) => [w.text, src.slice(w.start, w.end), w.expand]), [
      ['keadm', 'keadm', false],
      ['init', 'init', false],
      ['--kubeedge-version=v1.22.0', '--kubeedge-version=v1.22.0', false],
      ['--advertise-address=$IP', '--advertise-address="$IP"', true],
    ]);
  });

  it('scans $(…) and backticks as commands of their own; $((…)) and ${…} are expansions', () => {
    assert.deepEqual(cmds('V=$(curl -s https://x.example/v | tr -d v) W=`wget -qO- http://y` Z=$((1+2)) ${A:-b}'), [
      ['curl', '-s', 'https://x.example/v'], ['tr', '-d', 'v'],
      ['wget', '-qO-', 'http://y'],
      ['V=$(curl -s https://x.example/v | tr -d v)', 'W=`wget -qO- http://y`', 'Z=$((1+2))', '${A:-b}'],
    ]);
    assert.deepEqual(cmds('echo "v=$(docker pull a:1)"'), [['docker', 'pull', 'a:1'], ['echo', 'v=$(docker pull a:1)']]);
  });

  it('returns here-document bodies separately (<<, <<-, quoted delimiters)', () => {
    const src = "cat > f <<'EOF'\nimage: a:1\n$(not run)\nEOF\necho after\ncat <<-END\n\tbody\n\tEND\n";
    const s = scanShell(src);
    assert.deepEqual(s.commands.map((c) => c.words.map((w) => w.text)), [['cat'], ['echo', 'after'], ['cat']]);
    assert.deepEqual(s.heredocs.map((h) => src.slice(h.start, h.end)), ['image: a:1\n$(not run)\n', '\tbody\n']);
  });

  it('finds URLs and judges hosts', () => {
    assert.deepEqual(findUrls('see https://a.example.com/x, and http://u:p@10.0.0.1:8080/y. ftp://h.example.org'), [
      { url: 'https://a.example.com/x', host: 'a.example.com', index: 4, variable: false },
      { url: 'http://u:p@10.0.0.1:8080/y', host: '10.0.0.1:8080', index: 33, variable: false },
      { url: 'ftp://h.example.org', host: 'h.example.org', index: 61, variable: false },
    ]);
    assert.equal(findUrls('https://${HOST}:6443')[0]!.variable, true);
    assert.equal(findUrls('https://%{KUBERNETES_API}%/static')[0]!.variable, true);
    const internal = internalHostMatcher(['sea.hub', 'mirror.example.com:5000', '*.corp.example', '203.0.113.7']);
    const yes = ['localhost:8080', '127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.0.2:5000', '[::1]:80', '[fd00::1]', 'cloudcore:10002',
      'metrics.kube-system.svc', 'a.b.svc.cluster.local', 'files.site.internal', 'sea.hub:5000', 'mirror.example.com:5000', 'x.corp.example', 'corp.example', '203.0.113.7'];
    const no = ['get.k3s.io', 'registry-1.docker.io', '8.8.8.8', '172.32.0.1', 'mirror.example.com', 'mirror.example.com:443', 'evilcorp.example', '[2001:db8::1]'];
    for (const h of yes) assert.equal(internal(h), true, h);
    for (const h of no) assert.equal(internal(h), false, h);
  });

  it('maps offsets to 1-based line:col', () => {
    const ix = new LineIndex('ab\ncd\n\nx');
    assert.deepEqual([0, 1, 3, 6, 7].map((o) => ix.pos(o)), [{ line: 1, col: 1 }, { line: 1, col: 2 }, { line: 2, col: 1 }, { line: 3, col: 1 }, { line: 4, col: 1 }]);
  });
});
