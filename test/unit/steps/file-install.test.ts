import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileInstallSchema, type FileInstallArgs } from '../../../common/src/plan/steps/file-install.js';
import { fileInstallExecutor } from '../../../agent/src/steps/file-install.js';
import { makeContext, withCtx, type TestContext } from './step-context.js';

function args(raw: Record<string, unknown>): FileInstallArgs {
  const r = fileInstallSchema.parse(raw);
  assert.deepEqual(r.problems, []);
  return r.args!;
}

describe('file.install schema', () => {
  it('reads sources, octal modes and owners', () => {
    const a = args({ bundle: 'edge', src: 'bin/edgecore', dest: '/usr/local/bin/edgecore', mode: '0755', owner: 'root', group: '0' });
    assert.deepEqual(a.source, { bundle: 'edge', src: 'bin/edgecore' });
    assert.equal(a.mode, 0o755);
    assert.equal(a.backup, false);
    assert.equal(args({ content: 'x', dest: '/x', mode: 644 }).mode, 0o644, 'an unquoted 644 still means rw-r--r--');
    assert.equal(args({ content: 'x', dest: '/x', mode: '0o600' }).mode, 0o600);
  });

  it('reports bad args', () => {
    const problems = (raw: Record<string, unknown>) => fileInstallSchema.parse(raw).problems.map((p) => `${p.path}: ${p.message}`);
    assert.match(problems({ dest: '/x' })[0]!, /give "bundle" \+ "src".* or "content"/);
    assert.match(problems({ content: 'a', bundle: 'b', src: 'c', dest: '/x' })[0]!, /not both/);
    assert.match(problems({ bundle: 'b', src: '../etc/shadow', dest: '/x' })[0]!, /^src: .*inside the bundle/);
    assert.match(problems({ content: 'a', dest: '/x', mode: '0999' })[0]!, /^mode: .*octal/);
    assert.match(problems({ content: 'a', dest: '/x', owner: 'bad name' })[0]!, /^owner: /);
    assert.match(problems({ content: 'a', dest: 'x' })[0]!, /^dest: .*absolute/);
  });
});

describe('file.install', () => {
  let t: TestContext;
  let bundle: string;
  beforeEach(() => {
    t = makeContext();
    bundle = join(t.root, '..', `${t.root.split('/').pop()}-bundle`);
    mkdirSync(join(bundle, 'bin'), { recursive: true });
    writeFileSync(join(bundle, 'bin/edgecore'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]));
    t.ctx.bundleDir = (as) => { if (as !== 'edge') throw new Error(`bundle "${as}" is not staged`); return bundle; };
  });
  afterEach(() => { t.cleanup(); t.ctx.bundleDir = () => ''; });

  it('installs a bundle file atomically with mode, making parent directories; then unchanged', async () => {
    const a = args({ bundle: 'edge', src: 'bin/edgecore', dest: '/usr/local/bin/edgecore', mode: '0755' });
    const out = await fileInstallExecutor.run(a, t.ctx);
    assert.equal(out.status, 'changed', out.message);
    assert.match(out.message, /installed \/usr\/local\/bin\/edgecore: created \(8 bytes, 0755, 0:0\) \(made 3 directories\)/);
    assert.match(out.diff!, /binary content none → sha256 [0-9a-f]{12}… \(8 bytes\)/);
    assert.deepEqual(readFileSync(t.at('/usr/local/bin/edgecore')), readFileSync(join(bundle, 'bin/edgecore')));
    assert.equal(statSync(t.at('/usr/local/bin/edgecore')).mode & 0o7777, 0o755);
    assert.deepEqual(readdirSync(t.at('/usr/local/bin')), ['edgecore'], 'no temp files left');
    const again = await fileInstallExecutor.run(a, t.ctx);
    assert.equal(again.status, 'unchanged', again.message);
  });

  it('resolves owner and group names from the host, and fixes attributes in place', async () => {
    t.put('/etc/passwd', 'root:x:0:0:root:/root:/bin/bash\nkubeedge:x:1500:1600::/var/lib/kubeedge:/usr/sbin/nologin\n');
    t.put('/etc/group', 'root:x:0:\nkubeedge:x:1600:\n');
    const a = args({ content: 'token: abc\n', dest: '/etc/kubeedge/token', mode: '0600', owner: 'kubeedge', group: 'kubeedge' });
    assert.equal((await fileInstallExecutor.run(a, t.ctx)).status, 'changed');
    let st = statSync(t.at('/etc/kubeedge/token'));
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o600, 1500, 1600]);
    assert.equal((await fileInstallExecutor.run(a, t.ctx)).status, 'unchanged');

    const wider = await fileInstallExecutor.run({ ...a, mode: 0o640, backup: true }, t.ctx);
    assert.equal(wider.status, 'changed');
    assert.equal(wider.message, 'updated /etc/kubeedge/token: mode 0600 → 0640');
    st = statSync(t.at('/etc/kubeedge/token'));
    assert.equal(st.mode & 0o7777, 0o640);
    assert.deepEqual(readdirSync(t.at('/etc/kubeedge')), ['token'], 'attributes alone need no backup');

    const nobody = await fileInstallExecutor.run({ ...a, owner: 'edgeadmin' }, t.ctx);
    assert.equal(nobody.errorCode, 'NOT_FOUND');
    assert.match(nobody.message, /user "edgeadmin" does not exist on this host/);
  });

  it('replaces changed content with a unified diff and a backup', async () => {
    t.put('/etc/app.conf', 'a=1\nb=2\n', 0o644);
    const out = await fileInstallExecutor.run(args({ content: 'a=1\nb=3\n', dest: '/etc/app.conf', backup: true }), t.ctx);
    assert.equal(out.status, 'changed');
    assert.equal(out.diff, '--- /etc/app.conf\n+++ /etc/app.conf\n@@ -1,2 +1,2 @@\n a=1\n-b=2\n+b=3\n');
    assert.deepEqual(t.lines.map((l) => l.line), out.diff!.trimEnd().split('\n'));
    const bak = readdirSync(t.at('/etc')).filter((n) => n.startsWith('app.conf.ferry-bak-'));
    assert.equal(bak.length, 1);
    assert.equal(t.read(`/etc/${bak[0]}`), 'a=1\nb=2\n');
    assert.equal(t.read('/etc/app.conf'), 'a=1\nb=3\n');
    assert.equal(statSync(t.at('/etc/app.conf')).mode & 0o7777, 0o644, 'mode kept when not given');
  });

  it('refuses a dest under a symlinked directory that leaves the host root, and writes nothing there', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'ferry-outside-'));
    try {
      mkdirSync(t.at('/etc'), { recursive: true });
      symlinkSync(outside, t.at('/etc/kubeedge'));
      const a = args({ content: 'token: abc\n', dest: '/etc/kubeedge/sub/token' });
      const out = await fileInstallExecutor.run(a, t.ctx);
      assert.equal(out.status, 'failed');
      assert.match(out.message, /\/etc\/kubeedge\/sub\/token resolves to .*, outside the host root/);
      assert.deepEqual(readdirSync(outside), [], 'nothing written outside the root');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('check mode reports and writes nothing (not even directories)', async () => {
    const out = await fileInstallExecutor.run(args({ content: 'x\n', dest: '/opt/new/file' }), withCtx(t, { check: true }));
    assert.equal(out.status, 'changed');
    assert.match(out.message, /^check mode: would create \/opt\/new\/file/);
    assert.match(out.diff!, /\+x/);
    assert.equal(existsSync(t.at('/opt')), false);
  });

  it('fails clearly for a missing bundle file, an unstaged bundle, or a directory at dest', async () => {
    const missing = await fileInstallExecutor.run(args({ bundle: 'edge', src: 'bin/cloudcore', dest: '/x' }), t.ctx);
    assert.equal(missing.errorCode, 'NOT_FOUND');
    assert.match(missing.message, /bundle "edge" has no file bin\/cloudcore\. Next: check "src"/);
    const unstaged = await fileInstallExecutor.run(args({ bundle: 'cloud', src: 'bin/x', dest: '/x' }), t.ctx);
    assert.equal(unstaged.status, 'failed');
    assert.match(unstaged.message, /bundle "cloud" is not staged/);
    mkdirSync(t.at('/etc/dir'), { recursive: true });
    const dir = await fileInstallExecutor.run(args({ content: 'x', dest: '/etc/dir' }), t.ctx);
    assert.match(dir.message, /\/etc\/dir exists and is not a regular file/);
    assert.equal(existsSync(t.at('/x')), false);
  });
});
