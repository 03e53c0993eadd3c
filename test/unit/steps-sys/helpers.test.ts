/**
 * Helpers under agent/src/steps/sys/: unified diffs, globs over bundle files, image ref
 * normalisation and rewrites, iptables rule/ruleset text, kubectl output parsing and argv,
 * and the command runner (process-group kill on abort, missing programs).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeSave, ruleWithComment } from '../../../agent/src/steps/iptables-rule.js';
import { fileDiff } from '../../../agent/src/steps/util/text-diff.js';
import { normalizeRef, rewriteRef } from '../../../agent/src/steps/sys/image-ref.js';
import { kubectlSaid, parseChanges } from '../../../agent/src/steps/sys/kubectl.js';
import { expandGlob, resolveBundleFiles } from '../../../agent/src/steps/sys/paths.js';
import { commandError, runCommand } from '../../../agent/src/steps/sys/run.js';
import { StepError } from '../../../agent/src/steps/step-error.js';

describe('steps/sys: unified diff', () => {
  it('shows hunks with context, new files and equal texts', () => {
    const a = ['[Unit]', 'Description=x', '', '[Service]', 'ExecStart=/bin/a v1', 'Restart=always', ''].join('\n');
    const b = a.replace('v1', 'v2');
    assert.equal(fileDiff('/etc/x.service', a, b), [
      '--- a/etc/x.service', '+++ b/etc/x.service', '@@ -2,5 +2,5 @@',
      ' Description=x', ' ', ' [Service]', '-ExecStart=/bin/a v1', '+ExecStart=/bin/a v2', ' Restart=always', '',
    ].join('\n'));
    assert.equal(fileDiff('/x', undefined, 'one\ntwo\n'), '--- /dev/null\n+++ b/x\n@@ -0,0 +1,2 @@\n+one\n+two\n');
    assert.equal(fileDiff('/x', 'same\n', 'same\n'), '');
  });
});

describe('steps/sys: bundle globs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-glob-'));
  before(() => {
    mkdirSync(join(dir, 'images'));
    for (const f of ['b.tar', 'a.tar', '.hidden.tar', 'notes.txt']) writeFileSync(join(dir, 'images', f), 'x');
    symlinkSync('/etc/hostname', join(dir, 'images', 'z.tar'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const ctx = { bundleDir: (as: string) => { if (as !== 'b') throw new Error('not staged'); return dir; } };

  it('expands * and ? per segment, sorted, without dot files', () => {
    assert.deepEqual(expandGlob(dir, 'images/?.tar'), ['images/a.tar', 'images/b.tar', 'images/z.tar']);
    assert.deepEqual(expandGlob(dir, 'images/notes.txt'), ['images/notes.txt']);
    assert.deepEqual(expandGlob(dir, 'images/*.zip'), []);
  });

  it('refuses patterns with no match, links leaving the bundle, unstaged bundles', () => {
    assert.throws(() => resolveBundleFiles(ctx, 'b', ['images/*.zip'], 'image tar'), (e: StepError) => e.code === 'STEP_INPUT_MISSING' && /"images\/\*\.zip" matched no file in bundle "b"/.test(e.message));
    assert.throws(() => resolveBundleFiles(ctx, 'b', ['images/*.tar'], 'image tar'), /images\/z\.tar" in bundle "b" points outside the bundle/);
    assert.throws(() => resolveBundleFiles(ctx, 'nope', ['x'], 'image tar'), /bundle "nope" is not staged on this host: not staged/);
    assert.deepEqual(resolveBundleFiles(ctx, 'b', ['images/[ab].tar'], 'image tar').map((f) => f.label), ['b:images/a.tar', 'b:images/b.tar']);
  });
});

describe('steps/sys: image refs', () => {
  it('normalises like containerd', () => {
    assert.equal(normalizeRef('nginx'), 'docker.io/library/nginx:latest');
    assert.equal(normalizeRef('kubeedge/cloudcore:v1.19.0'), 'docker.io/kubeedge/cloudcore:v1.19.0');
    assert.equal(normalizeRef('sea.hub:5000/lvscare'), 'sea.hub:5000/lvscare:latest');
    assert.equal(normalizeRef('localhost/x@sha256:abc'), 'localhost/x@sha256:abc');
    assert.equal(normalizeRef('index.docker.io/a/b:1'), 'docker.io/a/b:1');
  });

  it('rewrites by prefix or repository, first match wins', () => {
    const rules = [
      { from: 'sealerio/lvscare:v1', to: 'sea.hub:5000/lvscare:stable' },
      { from: 'kubeedge/', to: 'sea.hub:5000/kubeedge/' },
      { from: 'docker.io/library/nginx', to: 'registry.local/nginx' },
    ];
    assert.equal(rewriteRef('docker.io/kubeedge/cloudcore:v1.19.0', rules), 'sea.hub:5000/kubeedge/cloudcore:v1.19.0');
    assert.equal(rewriteRef('kubeedge-x/cloudcore:1', rules), undefined);
    assert.equal(rewriteRef('sealerio/lvscare:v1', rules), 'sea.hub:5000/lvscare:stable');
    assert.equal(rewriteRef('sealerio/lvscare:v2', rules), undefined);
    assert.equal(rewriteRef('nginx:1.27', rules), 'registry.local/nginx:1.27');
  });
});

describe('steps/sys: iptables text', () => {
  it('puts the comment match before the target', () => {
    assert.deepEqual(ruleWithComment(['-p', 'tcp', '--dport', '10350', '-j', 'DNAT', '--to', '1.2.3.4:10003'], 'ferry: m'),
      ['-p', 'tcp', '--dport', '10350', '-m', 'comment', '--comment', 'ferry: m', '-j', 'DNAT', '--to', '1.2.3.4:10003']);
    assert.deepEqual(ruleWithComment(['-s', '10.0.0.0/8'], 'c'), ['-s', '10.0.0.0/8', '-m', 'comment', '--comment', 'c']);
    assert.deepEqual(ruleWithComment(['-j', 'ACCEPT'], undefined), ['-j', 'ACCEPT']);
  });

  it('compares saved rulesets without dates and counters', () => {
    const a = '# Generated by iptables-save v1.8.9 on Mon\n*nat\n:OUTPUT ACCEPT [12:720]\n-A OUTPUT -j X\nCOMMIT\n# Completed on Mon\n';
    const b = '# Generated by iptables-save v1.8.9 on Tue\n*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j X\nCOMMIT\n';
    assert.equal(normalizeSave(a), normalizeSave(b));
    assert.equal(normalizeSave(a), '*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j X\nCOMMIT\n');
  });
});

describe('steps/sys: kubectl output', () => {
  it('tells changed from unchanged objects', () => {
    assert.deepEqual(parseChanges('configmap/a created\nconfigmap/b unchanged\ndeployment.apps/c configured\ncm/d serverside-applied\n'),
      { changed: ['configmap/a created', 'deployment.apps/c configured', 'cm/d serverside-applied'], unchanged: ['configmap/b unchanged'] });
    assert.deepEqual(parseChanges('configmap/cloudcore patched (no change)\n'), { changed: [], unchanged: ['configmap/cloudcore patched (no change)'] });
    assert.deepEqual(parseChanges('configmap/cloudcore patched (server dry run)\n').changed, ['configmap/cloudcore patched']);
  });

  it('drops klog noise from kubectl\'s stderr', () => {
    const r = { argv: ['kubectl'], exitCode: 1, stdout: '', timedOut: false, truncated: false,
      stderr: 'E1122 02:52:19.991949 23019 memcache.go:265] "Unhandled Error"\nThe connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n' };
    assert.equal(kubectlSaid(r), 'The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?');
  });
});

describe('steps/sys: command runner', () => {
  const lines: string[] = [];
  const ctxWith = (signal: AbortSignal) => ({ signal, output: (l: string) => lines.push(l) });

  it('collects and streams output, never rejecting on exit codes', async () => {
    const r = await runCommand(ctxWith(new AbortController().signal), ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual([r.exitCode, r.stdout, r.stderr], [3, 'out\n', 'err\n']);
    assert.ok(lines.includes('out') && lines.includes('err'));
    const e = commandError(r, 'doing x', 'fix y');
    assert.equal(e.message, 'doing x: `sh -c \'echo out; echo err >&2; exit 3\'` failed (exit 3): err');
  });

  it('kills the whole process group when the step is cancelled', async () => {
    const ac = new AbortController();
    let bg = 0;
    const ctx = { signal: ac.signal, output: (l: string) => { bg = Number(l); ac.abort(new Error('cancelled by the operator')); } };
    const t0 = Date.now();
    await assert.rejects(runCommand(ctx, ['sh', '-c', 'sleep 30 & echo $!; wait']), (e: StepError) => e.code === 'CANCELLED' && /cancelled by the operator/.test(e.message));
    assert.ok(Date.now() - t0 < 5000, 'runCommand waited for the sleeps');
    assert.ok(bg > 0);
    await new Promise((r) => setTimeout(r, 100));
    // Dead means gone or a zombie (reparented to a PID 1 that may reap late on this machine).
    let state = 'gone';
    try { state = readFileSync(`/proc/${bg}/stat`, 'utf8').replace(/^.*\) /s, '')[0]!; } catch { /* gone */ }
    assert.ok(state === 'gone' || state === 'Z', `the background child of the command survived (state ${state})`);
  });

  it('says which program is missing and what to do', async () => {
    await assert.rejects(runCommand(ctxWith(new AbortController().signal), ['ferry-no-such-tool', 'x'], { installHint: 'install it' }),
      (e: StepError) => e.code === 'STEP_TOOL_MISSING' && /^ferry-no-such-tool is not installed on this host/.test(e.message) && e.hint === 'install it');
  });
});
