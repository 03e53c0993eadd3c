import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { execSchema, type ExecArgs } from '../../../common/src/plan/steps/exec.js';
import { execExecutor } from '../../../agent/src/steps/exec.js';
import { makeContext, withCtx, type TestContext } from './step-context.js';

function args(raw: Record<string, unknown>): ExecArgs {
  const r = execSchema.parse(raw);
  assert.deepEqual(r.problems, []);
  return r.args!;
}

/** True once a pid is gone (or a zombie waiting for a reaper that is not us). */
export async function processGone(pid: number, withinMs = 3000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      process.kill(pid, 0);
      const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
      if (state === 'Z') return true;
    } catch {
      return true;
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('exec schema', () => {
  it('takes argv or shell, guards, durations and exit codes', () => {
    const a = args({ argv: ['ctr', '-n', 'k8s.io', 'images', 'import', 'x.tar'], timeout: '5m', expectExit: [0, 3], creates: '/var/lib/x', unless: 'test -f /x', onlyIf: ['true'] });
    assert.deepEqual(a.command, { argv: ['ctr', '-n', 'k8s.io', 'images', 'import', 'x.tar'] });
    assert.equal(a.timeoutMs, 300_000);
    assert.deepEqual(a.expectExit, [0, 3]);
    assert.deepEqual(a.unless, { shell: 'test -f /x' });
    assert.deepEqual(a.onlyIf, { argv: ['true'] });
    assert.deepEqual(args({ shell: 'echo hi' }).expectExit, [0]);
  });

  it('reports bad args', () => {
    const problems = (raw: Record<string, unknown>) => execSchema.parse(raw).problems.map((p) => `${p.path}: ${p.message}`);
    assert.match(problems({})[0]!, /give "argv".*or "shell"/);
    assert.match(problems({ argv: ['a'], shell: 'b' })[0]!, /not both/);
    assert.match(problems({ argv: [] })[0]!, /must not be empty/);
    assert.match(problems({ shell: 'x', timeout: '10' })[0]!, /^timeout: .*duration like/);
    assert.match(problems({ shell: 'x', expectExit: [0, 300] })[0]!, /^expectExit:/);
    assert.match(problems({ shell: 'x', cwd: 'tmp' })[0]!, /^cwd: .*absolute/);
    assert.match(problems({ shell: 'x', unless: 5 })[0]!, /^unless:/);
    assert.match(problems({ shell: 'x', retry: 1 })[0]!, /unknown argument "retry"/);
  });
});

describe('exec', () => {
  let t: TestContext;
  beforeEach(() => { t = makeContext(); });
  afterEach(() => t.cleanup());

  it('runs argv, streams stdout and stderr lines, and reports changed', async () => {
    const out = await execExecutor.run(args({ argv: ['/bin/sh', '-c', 'echo one; echo two >&2; echo three'] }), t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.match(out.message, /^ran `\/bin\/sh -c 'echo one; echo two >&2; echo three'` \(exit 0, /);
    // Order within a stream is kept; stdout and stderr interleave as the OS delivers them.
    assert.deepEqual(t.lines.filter((l) => l.stream === 'stdout').map((l) => l.line), ['one', 'three']);
    assert.deepEqual(t.lines.filter((l) => l.stream === 'stderr').map((l) => l.line), ['two']);
  });

  it('passes env and cwd (under the host root)', async () => {
    mkdirSync(t.at('/opt/work'), { recursive: true });
    const out = await execExecutor.run(args({ shell: 'echo "$GREETING from $(pwd)"', env: { GREETING: 'hello' }, cwd: '/opt/work' }), t.ctx);
    assert.equal(out.status, 'changed');
    assert.equal(t.lines[0]!.line, `hello from ${realpathSync(t.at('/opt/work'))}`);
    const missing = await execExecutor.run(args({ shell: 'true', cwd: '/nope' }), t.ctx);
    assert.equal(missing.errorCode, 'NOT_FOUND');
    assert.match(missing.message, /working directory \/nope does not exist/);
  });

  it('accepts listed exit codes and fails others with the output', async () => {
    assert.equal((await execExecutor.run(args({ shell: 'exit 3', expectExit: [0, 3] }), t.ctx)).status, 'changed');
    const out = await execExecutor.run(args({ shell: 'echo "image not found: edgemesh" >&2; exit 2' }), t.ctx);
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'STEP_EXIT_CODE');
    assert.match(out.message, /^`echo .*; exit 2` exited 2 \(expected exit 0\)\. Next: fix the cause[^\n]*\nlast output:\nimage not found: edgemesh$/);
  });

  it('is idempotent with creates: runs once, then unchanged', async () => {
    const a = args({ shell: `touch ${t.at('/var/lib/app/.imported')}`, creates: '/var/lib/app/.imported' });
    mkdirSync(t.at('/var/lib/app'), { recursive: true });
    assert.equal((await execExecutor.run(a, t.ctx)).status, 'changed');
    const again = await execExecutor.run(a, t.ctx);
    assert.equal(again.status, 'unchanged');
    assert.match(again.message, /\/var\/lib\/app\/\.imported exists; not running/);
  });

  it('unless (exit 0) means unchanged, onlyIf (non-zero) means skipped, and neither runs the command', async () => {
    const marker = t.at('/ran');
    const u = await execExecutor.run(args({ shell: `touch ${marker}`, unless: 'true' }), t.ctx);
    assert.equal(u.status, 'unchanged');
    const o = await execExecutor.run(args({ shell: `touch ${marker}`, onlyIf: ['sh', '-c', 'echo no containerd; exit 1'] }), t.ctx);
    assert.equal(o.status, 'skipped');
    assert.match(o.message, /onlyIf-guard exited 1/);
    assert.ok(t.lines.some((l) => l.line === '[onlyIf] no containerd'));
    assert.equal(existsSync(marker), false);
    assert.equal((await execExecutor.run(args({ shell: `touch ${marker}`, unless: 'false', onlyIf: 'true' }), t.ctx)).status, 'changed');
    assert.equal(existsSync(marker), true);
  });

  it('check mode says what would run and runs nothing', async () => {
    const marker = t.at('/ran');
    const out = await execExecutor.run(args({ argv: ['touch', marker] }), withCtx(t, { check: true }));
    assert.equal(out.status, 'changed');
    assert.match(out.message, /^check mode: would run `touch /);
    assert.equal(existsSync(marker), false);
  });

  it('names a command that does not exist', async () => {
    const out = await execExecutor.run(args({ argv: ['keadm-not-installed', 'init'] }), t.ctx);
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'NOT_FOUND');
    assert.match(out.message, /command not found: keadm-not-installed \(running `keadm-not-installed init`\)\. Next: install it/);
  });

  it('times out, killing the whole process group', async () => {
    const started = Date.now();
    const out = await execExecutor.run(args({ shell: 'sleep 300 & echo $!; sleep 300', timeout: '300ms' }), t.ctx);
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'DEADLINE_EXCEEDED');
    assert.match(out.message, /timed out after 300ms\. Next: raise "timeout"/);
    assert.ok(Date.now() - started < 5000);
    assert.ok(await processGone(Number(t.lines[0]!.line)), 'background child killed');
  });

  it('aborting ctx.signal kills a running command and its children', async () => {
    const running = execExecutor.run(args({ shell: 'sleep 300 & echo $!; sleep 300' }), t.ctx);
    while (t.lines.length === 0) await new Promise((r) => setTimeout(r, 20));
    const child = Number(t.lines[0]!.line);
    const started = Date.now();
    t.abort.abort();
    const out = await running;
    assert.equal(out.status, 'failed');
    assert.equal(out.errorCode, 'CANCELLED');
    assert.match(out.message, /cancelled while running .*process group was stopped/);
    assert.ok(Date.now() - started < 4000, 'stopped promptly');
    assert.ok(await processGone(child), 'background child killed');
  });
});
