import assert from 'node:assert/strict';
import { assertSchema, type AssertArgs } from '../../../common/src/plan/steps/assert.js';
import { assertExecutor } from '../../../agent/src/steps/assert.js';
import { makeContext, withCtx, type TestContext } from './step-context.js';
import { CLOUDCORE_YAML_SEED_001, EDGECORE_YAML, EDGECORE_YAML_SEED_004 } from './kubeedge-fixtures.js';

function args(raw: Record<string, unknown>): AssertArgs {
  const r = assertSchema.parse(raw);
  assert.deepEqual(r.problems, []);
  return r.args!;
}

/** A stand-in `ctr` that lists images like containerd's does. */
const fakeCtr = (images: string[]) => `#!/bin/sh
[ "$1 $2 $3 $4" = "-n k8s.io images ls" ] || { echo "ctr: unexpected args $*" >&2; exit 1; }
echo "REF TYPE DIGEST SIZE PLATFORMS LABELS"
${images.map((i) => `echo "${i} application/vnd.oci.image.index.v1+json sha256:0123 25.1 MiB linux/amd64 io.cri-containerd.image=managed"`).join('\n')}
`;

describe('assert schema', () => {
  it('reads command and expectations', () => {
    const a = args({ command: 'ctr -n k8s.io images ls | grep edgemesh' });
    assert.deepEqual(a, { command: { shell: 'ctr -n k8s.io images ls | grep edgemesh' }, contains: undefined, notContains: undefined, matches: undefined, equals: undefined, exitCode: 0, stream: 'stdout', timeoutMs: undefined });
    assert.deepEqual(args({ command: ['ctr'], contains: 'edgemesh' }).contains, ['edgemesh']);
    const problems = (raw: Record<string, unknown>) => assertSchema.parse(raw).problems.map((p) => `${p.path}: ${p.message}`);
    assert.match(problems({ contains: 'x' })[0]!, /^command: missing/);
    assert.match(problems({ command: 'x', matches: '([' })[0]!, /^matches: .*not a valid regular expression/);
    assert.match(problems({ command: 'x', stream: 'all' })[0]!, /^stream: .*stdout, stderr, both/);
    assert.match(problems({ command: 'x', contains: [] })[0]!, /^contains: /);
  });
});

describe('assert', () => {
  let t: TestContext;
  beforeEach(() => { t = makeContext(); });
  afterEach(() => t.cleanup());

  it('expresses seed 001: ctr -n k8s.io images ls | grep edgemesh', async () => {
    const ctr = t.put('/usr/local/bin/ctr', fakeCtr(['docker.io/kubeedge/edgemesh-agent:v1.17.0']), 0o755);
    const piped = await assertExecutor.run(args({ command: `${ctr} -n k8s.io images ls | grep edgemesh` }), t.ctx);
    assert.equal(piped.status, 'unchanged', piped.message);
    const listed = await assertExecutor.run(args({ command: [ctr, '-n', 'k8s.io', 'images', 'ls'], contains: 'docker.io/kubeedge/edgemesh-agent:v1.17.0' }), t.ctx);
    assert.equal(listed.status, 'unchanged', listed.message);

    t.put('/usr/local/bin/ctr', fakeCtr(['docker.io/library/eclipse-mosquitto:2.0']), 0o755);
    const gone = await assertExecutor.run(args({ command: [ctr, '-n', 'k8s.io', 'images', 'ls'], contains: 'edgemesh-agent' }), t.ctx);
    assert.equal(gone.status, 'failed');
    assert.equal(gone.errorCode, 'STEP_ASSERT_FAILED');
    assert.match(gone.message, /^assertion failed for `.*ctr -n k8s\.io images ls`: stdout does not contain "edgemesh-agent"\. Next: what it verifies/);
    assert.match(gone.message, /\nactual stdout:\nREF TYPE DIGEST SIZE PLATFORMS LABELS\ndocker\.io\/library\/eclipse-mosquitto:2\.0 /);
    const grep = await assertExecutor.run(args({ command: `${ctr} -n k8s.io images ls | grep edgemesh` }), t.ctx);
    assert.match(grep.message, /exit code 1, expected 0[^\n]*\nactual stdout: \(empty\)$/);
  });

  it('expresses seed 004 and seed 001 config checks (grep -A 8 edgeStream:, grep -A 2 dynamicController:)', async () => {
    const edgecore = t.put('/etc/kubeedge/config/edgecore.yaml', EDGECORE_YAML_SEED_004);
    const stream = args({ command: `grep -A 8 edgeStream: ${edgecore}`, contains: ['enable: true', 'server: 127.0.0.1:10004'], matches: '^\\s+writeDeadline: 15$' });
    assert.equal((await assertExecutor.run(stream, t.ctx)).status, 'unchanged');
    t.put('/etc/kubeedge/config/edgecore.yaml', EDGECORE_YAML);
    const before = await assertExecutor.run(stream, t.ctx);
    assert.equal(before.status, 'failed');
    assert.match(before.message, /stdout does not contain "enable: true"; stdout does not contain "server: 127\.0\.0\.1:10004"/);
    assert.match(before.message, /\n  edgeStream:\n    enable: false          # flipped by the installer\n/);

    const cloudcore = t.put('/etc/kubeedge/config/cloudcore.yaml', CLOUDCORE_YAML_SEED_001);
    const dyn = await assertExecutor.run(args({ command: ['grep', '-A', '2', 'dynamicController:', cloudcore], matches: 'dynamicController:\\n\\s+enable: true' }), t.ctx);
    assert.equal(dyn.status, 'unchanged', dyn.message);
  });

  it('checks equals, notContains, exit codes and stderr', async () => {
    assert.equal((await assertExecutor.run(args({ command: 'echo active', equals: 'active' }), t.ctx)).status, 'unchanged');
    assert.equal((await assertExecutor.run(args({ command: 'test -e /nonexistent-ferry', exitCode: 1 }), t.ctx)).status, 'unchanged');
    const err = await assertExecutor.run(args({ command: 'echo "WARNING: swap on" >&2', stream: 'stderr', notContains: 'WARNING' }), t.ctx);
    assert.match(err.message, /stderr contains "WARNING"[^\n]*\nactual stderr:\nWARNING: swap on/);
    const neq = await assertExecutor.run(args({ command: 'echo inactive', equals: 'active' }), t.ctx);
    assert.match(neq.message, /stdout is not "active"/);
  });

  it('is skipped in check mode (runs nothing)', async () => {
    const out = await assertExecutor.run(args({ command: `touch ${t.at('/ran')}` }), withCtx(t, { check: true }));
    assert.equal(out.status, 'skipped');
  });
});
