import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, signManifest } from '../../common/src/bundle/manifest.js';
import { Exit } from '../../common/src/exit-codes.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import { memBundle } from '../support/bundles.js';
import type { Controller } from '../../controller/src/controller.js';
import { jsonLines } from '../support/json-lines.js';
import { assertConforms, documentedKinds, KINDS_CHECKED_ELSEWHERE } from '../support/json-docs.js';
import { pgrep } from '../support/pgrep.js';
import { cleanup, enrollAgent, joinString, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { repoRoot, run } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
const agentBin = join(repoRoot(), 'bin', 'ferry-agent.js');
const PLAN = `name: hello
steps:
  - id: say
    type: exec
    args: { argv: [sh, -c, "echo planned-hello; echo to-stderr >&2"] }
`;
/** A plan whose one step sleeps; the odd duration names its process on the host. */
const SLOW_SECONDS = `30.${process.pid}`;
const SLOW = `name: slow
steps:
  - id: nap
    type: exec
    args: { argv: [sleep, "${SLOW_SECONDS}"] }
`;

const records = (stdout: string) => jsonLines(stdout);


describe('the --json contract (docs/json.md) against real command output', function () {
  this.timeout(90_000);
  let c: Controller;
  const agents: TestAgent[] = [];
  const argv = (...args: string[]) => [process.execPath, ferryBin, '--admin-socket', c.config.adminSocket, ...args];
  const ferry = (...a: string[]) => run(argv(...a));
  const args = (...a: string[]) => argv(...a).slice(1);
  const docs = documentedKinds();
  const checked = new Set<string>();

  /** Every record has exactly the documented fields of its kind. */
  function conforms(kind: string, recs: readonly object[]): void {
    assertConforms(docs, kind, recs);
    checked.add(kind);
  }

  /** Runs `ferry ARGS --json` (the flag goes before a `--`). */
  async function json(...a: string[]): Promise<Array<Record<string, unknown>>> {
    const dash = a.indexOf('--');
    const r = await ferry(...(dash < 0 ? [...a, '--json'] : [...a.slice(0, dash), '--json', ...a.slice(dash)]));
    assert.equal(r.code, 0, `${a.join(' ')}: ${r.stdout}${r.stderr}`);
    return records(r.stdout);
  }

  /** The signing key the controller trusts, as a file for `--key`. */
  let keyFile = '';

  before(async () => {
    c = await startController();
    const key = generateSigningKey();
    keyFile = join(tempDir('ferry-json-key-'), 'ops.key');
    writeFileSync(keyFile, key.privatePem, { mode: 0o600 });
    const admin = Admin.connect({ adminSocket: c.config.adminSocket });
    try {
      // Hosts trust the keys they are given at enrollment.
      await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
      await admin.call(admin.client.pushPlan, { signed: signPlan(PLAN, 'hello.yaml', key.privatePem) });
      await admin.call(admin.client.pushPlan, { signed: signPlan(SLOW, 'slow.yaml', key.privatePem) });
      const b = memBundle('edge', '1.0.0', { 'bin/tool': Buffer.from('#!/bin/sh\n') }, key.privatePem);
      await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
      // One with an image and a registry rewrite, for `bundle show` (the controller takes images as listed).
      const s = memBundle('shown', '1.0.0', { 'images/app.tar': Buffer.from('not really a tar'), 'bin/app': Buffer.from('#!/bin/sh\n') }, key.privatePem);
      const m = { ...s.manifest, rewrites: [{ from: 'docker.io/', to: 'registry.site.local/' }], images: [{ file: 'images/app.tar', format: 'oci' as const,
        refs: ['docker.io/library/app:1.0'], platform: { os: 'linux', architecture: 'amd64' }, manifestDigest: `sha256:${'a'.repeat(64)}`, configDigest: `sha256:${'b'.repeat(64)}`, totalSize: 16 }] };
      await pushBundle(admin, signManifest(m, key.privatePem), byDigest(async (d) => s.chunks.get(d)!), { progress: false });
    } finally {
      admin.close();
    }
    agents.push(await enrollAgent(c, 'edge-1', { labels: { role: 'edge' } }));
    agents.push(await enrollAgent(c, 'edge-2', { labels: { role: 'edge' } }));
    // Enrolled, never connected: the offline records.
    agents.push(await enrollAgent(c, 'spare-1', { labels: { role: 'spare' }, start: false }));
    await waitFor(() => agents.slice(0, 2).every((a) => a.loop.state === 'connected'), 10_000, 'connected');
  });
  after(async () => cleanup(c, agents));

  it('prints exactly the documented fields for each kind, one object per line', async () => {
    conforms('agent', await json('agents', 'ls'));
    conforms('host', await json('exec', '--all', '--list-hosts', '--', 'true'));

    const failing = await ferry('exec', '--selector', 'role=edge', '--json', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3');
    assert.equal(failing.code, Exit.Failure, failing.stderr);
    const exec = records(failing.stdout);
    for (const type of ['started', 'line', 'finished', 'summary']) conforms(`exec.${type}`, exec.filter((r) => r['type'] === type));
    assert.equal(exec.length, 2 + 4 + 2 + 1, 'started, two lines and finished per host, one summary');
    assert.deepEqual(exec.filter((r) => r['type'] === 'finished').map((r) => [r['result'], r['exitCode'], r['signal']]), [['failed', 3, null], ['failed', 3, null]]);
    assert.deepEqual(exec.filter((r) => r['type'] === 'line').map((r) => r['stream']).sort(), ['stderr', 'stderr', 'stdout', 'stdout']);
    assert.deepEqual(exec.at(-1), { type: 'summary', matched: 2, succeeded: 0, failed: 2, offline: 0 });

    const plan = await ferry('run', 'hello', '--selector', 'role in (edge,spare)', '--json');
    assert.equal(plan.code, Exit.Failure, `one host is offline: ${plan.stderr}`);
    const ran = records(plan.stdout);
    for (const type of ['started', 'line', 'step', 'result', 'offline', 'summary']) conforms(`run.${type}`, ran.filter((r) => r['type'] === type));
    assert.deepEqual(ran.filter((r) => r['type'] !== 'summary').map((r) => r['hostname']).filter((h) => !h), [], 'every host record names its host');
    assert.deepEqual(ran.filter((r) => r['type'] === 'offline').map((r) => r['hostname']), ['spare-1']);
    assert.deepEqual(ran.filter((r) => r['type'] === 'result').map((r) => r['status']), ['succeeded', 'succeeded']);
    assert.equal(ran.at(-1)!['type'], 'summary');

    const fetched = await ferry('bundle', 'prefetch', 'edge:1.0.0', '--selector', 'role in (edge,spare)', '--json');
    assert.equal(fetched.code, Exit.Failure, `one host is offline: ${fetched.stderr}`);
    const pre = records(fetched.stdout);
    conforms('prefetch.progress', pre.filter((r) => r['type'] === 'progress'));
    conforms('prefetch.summary', pre.filter((r) => r['type'] === 'summary'));
    assert.deepEqual({ ...pre.at(-1), bytesFetched: 0 }, { type: 'summary', matched: 3, ready: 2, failed: 0, offline: 1, bytesFetched: 0 });

    conforms('job', await json('jobs', 'ls'));
    const created = await json('token', 'create', '--label', 'site=plant-7');
    conforms('token.created', created);
    conforms('token', await json('token', 'ls'));
    const revoked = await json('token', 'revoke', String(created[0]!['id']));
    conforms('token', revoked);
    assert.equal(typeof revoked[0]!['revokedAtMs'], 'number');

    const certDir = join(tempDir('ferry-json-op-'), 'olga');
    const cert = await json('operator', 'cert', 'olga', '--out', certDir);
    conforms('operator', cert.map(({ dir, ...rest }) => { assert.equal(dir, certDir); return rest; }));
    conforms('operator', await json('operator', 'ls'));
    conforms('audit', await json('audit', 'ls'));

    // ferry-agent status: the same fields before and after joining.
    const agent = (...a: string[]) => run([process.execPath, agentBin, ...a]);
    const stateDir = tempDir('ferry-json-agent-');
    const before = await agent('status', '--state', stateDir, '--json');
    assert.equal(before.code, Exit.NotEnrolled, before.stderr);
    const joined = await agent('join', await joinString(c), '--state', stateDir, '--hostname', 'field-1', '--json');
    assert.equal(joined.code, Exit.Ok, joined.stderr);
    conforms('agent-joined', records(joined.stdout));
    assert.equal(records(joined.stdout)[0]!['hostname'], 'field-1');
    const after = await agent('status', '--state', stateDir, '--json');
    assert.equal(after.code, Exit.Failure, `enrolled, not running: ${after.stderr}`);
    conforms('agent-status', [...records(before.stdout), ...records(after.stdout)]);
    assert.deepEqual([records(before.stdout)[0]!['state'], records(after.stdout)[0]!['state']], ['not-enrolled', 'not-running']);
    assert.equal(typeof records(after.stdout)[0]!['certNotAfterMs'], 'number');
    const version = await agent('version', '--state', stateDir, '--json');
    assert.equal(version.code, Exit.Ok, version.stderr);
    conforms('agent-version', records(version.stdout));

    await checkDelivery();
    await checkJobs();
    await checkRollouts();

    const err = await ferry('agents', 'show', 'no-such-host', '--json');
    assert.notEqual(err.code, 0);
    conforms('error', records(err.stdout));

    // The controller itself: one replica on SQLite, holding the scheduler lease, with the agents' sessions.
    const [st] = await json('controller', 'status');
    conforms('controller-status', [st!]);
    conforms('controller-replica', st!['replicas'] as object[]);
    assert.equal(st!['leader'], st!['replicaId']);
    assert.deepEqual((st!['replicas'] as Array<Record<string, unknown>>).map((r) => [r['leader'], r['self'], r['sessions']]), [[true, true, c.ctx.sessions.size]]);

    // The controller's own data: an online backup, and its restore into a new directory.
    const bdir = tempDir('ferry-json-backup-');
    const pass = { env: { FERRY_BACKUP_PASSPHRASE: 'json contract passphrase' }, timeoutMs: 60_000 };
    const bk = await run(argv('controller', 'backup', '--data', c.config.dataDir, '--out', join(bdir, 'b.fbak'), '--json'), pass);
    assert.equal(bk.code, 0, bk.stderr);
    conforms('controller-backup', records(bk.stdout));
    const rs = await run(argv('controller', 'restore', join(bdir, 'b.fbak'), '--data', join(bdir, 'data'), '--json'), pass);
    assert.equal(rs.code, 0, rs.stderr);
    conforms('controller-restore', records(rs.stdout));
    const wrong = await run(argv('controller', 'restore', join(bdir, 'b.fbak'), '--data', join(bdir, 'other'), '--json'), { env: { FERRY_BACKUP_PASSPHRASE: 'not it' } });
    assert.equal(wrong.code, Exit.Failure);
    assert.equal((records(wrong.stdout)[0]!['error'] as { code: string }).code, 'BACKUP_PASSPHRASE');

    // Every documented kind was checked here.
    assert.deepEqual([...docs.keys()].filter((k) => !checked.has(k) && !KINDS_CHECKED_ELSEWHERE.includes(k)), []);
  });

  /** key, bundle, lint and plan records. */
  async function checkDelivery(): Promise<void> {
    const dir = tempDir('ferry-json-delivery-');
    keyGen(dir);
    const added = await json('key', 'add', join(dir, 'second.pub'), '--name', 'second');
    conforms('key', added);
    const keys = await json('key', 'ls');
    conforms('key', keys);
    assert.deepEqual(keys.map((k) => k['name']).sort(), ['ops', 'second']);

    const bundles = await json('bundle', 'ls');
    conforms('bundle', bundles);
    assert.deepEqual(bundles.map((b) => `${b['name']}:${b['version']}`).sort(), ['edge:1.0.0', 'shown:1.0.0']);
    const [shown] = await json('bundle', 'show', 'shown:1.0.0');
    conforms('bundle.detail', [shown]);
    conforms('bundle.file', shown!['fileList'] as object[]);
    conforms('bundle.image', shown!['imageList'] as object[]);
    conforms('bundle.rewrite', shown!['rewrites'] as object[]);
    assert.deepEqual((shown!['fileList'] as Array<Record<string, unknown>>).map(({ sha256, ...f }) => { assert.match(String(sha256), /^[0-9a-f]{64}$/); return f; }),
      [{ path: 'bin/app', mode: '0755', sizeBytes: 10 }, { path: 'images/app.tar', mode: '0644', sizeBytes: 16 }]);
    assert.deepEqual(shown!['imageList'], [{ file: 'images/app.tar', refs: ['docker.io/library/app:1.0'], os: 'linux', arch: 'amd64' }]);

    // A package with a finding (an image nothing in it provides), and a clean one to build and push.
    const bad = join(dir, 'bad');
    mkdirSync(join(bad, 'manifests'), { recursive: true });
    writeFileSync(join(bad, 'manifests', 'app.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: { name: app }\nspec:\n  containers:\n    - name: app\n      image: registry.site.local/app:1.0\n');
    const lint = await ferry('bundle', 'lint', bad, '--json');
    assert.equal(lint.code, Exit.Failure, lint.stdout + lint.stderr);
    const linted = records(lint.stdout);
    conforms('lint.finding', linted.filter((r) => r['type'] === 'finding'));
    conforms('lint.summary', linted.filter((r) => r['type'] === 'summary'));
    assert.deepEqual(linted.at(-1), { type: 'summary', target: bad, errors: 1, warnings: 0 });
    assert.deepEqual(linted.filter((r) => r['type'] === 'finding').map((f) => [f['rule'], f['file'], f['line']]), [['image-missing', 'manifests/app.yaml', 7]]);
    const good = join(dir, 'good');
    mkdirSync(join(good, 'bin'), { recursive: true });
    writeFileSync(join(good, 'bin', 'tool'), '#!/bin/sh\necho tool\n');
    const clean = records((await ferry('bundle', 'lint', good, '--json')).stdout);
    assert.deepEqual(clean, [{ type: 'summary', target: good, errors: 0, warnings: 0 }], 'no findings: only the summary');

    const file = join(dir, 'tool.ferry');
    const [built] = await json('bundle', 'build', good, '-o', file, '--name', 'tool', '--version', '2.0.0', '--arch', 'amd64', '--key', keyFile);
    conforms('bundle.built', [built]);
    assert.equal(built!['file'], file);
    const pushed = await json('bundle', 'push', file);
    conforms('bundle.pushed', pushed);
    assert.deepEqual([pushed[0]!['id'], pushed[0]!['unchanged']], [built!['id'], false]);
    const again = await json('bundle', 'push', file);
    conforms('bundle.pushed', again);
    assert.deepEqual([again[0]!['unchanged'], again[0]!['chunksSent']], [true, 0]);
    const removed = await json('bundle', 'rm', 'tool:2.0.0');
    conforms('bundle.removed', removed);
    assert.equal(removed[0]!['id'], built!['id']);

    const planFile = join(dir, 'json-plan.yaml');
    writeFileSync(planFile, 'name: json-plan\ndescription: checks the plan records\nsteps:\n  - id: hi\n    type: exec\n    args: { argv: [echo, hi] }\n');
    const planPushed = await json('plan', 'push', planFile, '--key', keyFile);
    conforms('plan.pushed', planPushed);
    const planAgain = await json('plan', 'push', planFile, '--key', keyFile);
    assert.deepEqual([planPushed[0]!['unchanged'], planAgain[0]!['unchanged'], planAgain[0]!['id']], [false, true, planPushed[0]!['id']]);
    conforms('plan', await json('plan', 'ls'));
    const [plan] = await json('plan', 'show', 'json-plan');
    conforms('plan.detail', [plan]);
    assert.deepEqual([plan!['description'], plan!['file'], plan!['steps']], ['checks the plan records', 'json-plan.yaml', 1]);
  }

  /** `ferry key gen` (no --json: it writes files) for a second key to add. */
  function keyGen(dir: string): void {
    const r = spawnSync(process.execPath, [ferryBin, 'key', 'gen', '--out', join(dir, 'second')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }

  /** job.detail, job.host and job.log, from the exec and run above. */
  async function checkJobs(): Promise<void> {
    const jobs = await json('jobs', 'ls');
    const execJob = jobs.find((j) => j['kind'] === 'exec' && String(j['what']).includes('echo out'))!;
    const [shown] = await json('jobs', 'show', String(execJob['id']));
    conforms('job.detail', [shown]);
    conforms('job.host', shown!['hosts'] as object[]);
    assert.deepEqual((shown!['hosts'] as Array<Record<string, unknown>>).map((h) => [h['hostname'], h['state']]), [['edge-1', 'failed'], ['edge-2', 'failed']]);
    const logs = await json('jobs', 'logs', String(execJob['id']), '--host', 'edge-1');
    conforms('job.log', logs);
    assert.deepEqual(logs.filter((l) => l['kind'] === 'output').map((l) => [l['stream'], l['text']]).sort(), [['stderr', 'err'], ['stdout', 'out']]);
  }

  /** rollout, rollout.* : two one-host waves with an approval between them. */
  async function checkRollouts(): Promise<void> {
    const created = await json('rollout', 'create', '--plan', 'hello', '--host', 'edge-1', '--host', 'edge-2', '--waves', '1,100%', '--approval');
    conforms('rollout', created);
    const id = String(created[0]!['id']);
    const waiting = await ferry('rollout', 'watch', id, '--exit-on-pause', '--json');
    assert.equal(waiting.code, Exit.Paused, waiting.stdout + waiting.stderr);
    const first = records(waiting.stdout);
    assert.deepEqual(first.at(-1), { type: 'result', id, state: 'awaiting-approval', paused: false, pauseReason: null, counts: { succeeded: 1, pending: 1 } });
    conforms('rollout', await json('rollout', 'approve', id));
    const done = await ferry('rollout', 'watch', id, '--json');
    assert.equal(done.code, Exit.Ok, done.stdout + done.stderr);
    const watched = records(done.stdout);
    conforms('rollout.event', [...first, ...watched].filter((r) => r['type'] === 'event'));
    conforms('rollout.result', [first.at(-1)!, watched.at(-1)!]);
    assert.deepEqual(watched.at(-1), { type: 'result', id, state: 'succeeded', paused: false, pauseReason: null, counts: { succeeded: 2 } });
    assert.deepEqual(watched.filter((r) => r['kind'] === 'host' && r['state'] === 'succeeded').map((r) => r['hostname']).sort(), ['edge-1', 'edge-2']);

    conforms('rollout', await json('rollout', 'ls'));
    const [detail] = await json('rollout', 'show', id);
    conforms('rollout.detail', [detail]);
    conforms('rollout', [detail!['rollout'] as object]);
    conforms('rollout.wave', detail!['waves'] as object[]);
    conforms('rollout.host', detail!['hosts'] as object[]);
    assert.deepEqual((detail!['hosts'] as Array<Record<string, unknown>>).map((h) => [h['hostname'], h['wave'], h['state']]), [['edge-1', 0, 'succeeded'], ['edge-2', 1, 'succeeded']]);
    const logs = await json('rollout', 'logs', id, '--host', 'edge-1');
    conforms('rollout.log', logs);
    assert.ok(logs.some((l) => l['kind'] === 'output' && l['text'] === 'planned-hello' && l['stream'] === 'stdout'), JSON.stringify(logs));
  }

  it('ends quietly when the reader closes the pipe (exec --json | head -1, agents ls | head -1)', async () => {
    // exec: the reader goes away after the first line while hosts still print.
    const p = spawn(process.execPath, args('exec', '--selector', 'role=edge', '--json', '--', 'sh', '-c', 'i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done'), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.stdout.once('data', () => p.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => p.on('close', (c) => resolve(c)));
    assert.doesNotMatch(stderr, /EPIPE|Error/);
    assert.equal(code, Exit.Ok);

    // agents ls: the read end is closed before it writes anything.
    const q = spawn(process.execPath, args('agents', 'ls'), { stdio: ['ignore', 'pipe', 'pipe'] });
    let qerr = '';
    q.stderr.on('data', (d: Buffer) => { qerr += d.toString(); });
    q.stdout.destroy();
    const qcode = await new Promise<number | null>((resolve) => q.on('close', (c) => resolve(c)));
    assert.doesNotMatch(qerr, /EPIPE|Error/);
    assert.equal(qcode, Exit.Ok);
  });

  it('Ctrl-C during exec cancels the command on the hosts and exits 130', async () => {
    const marker = `30.${process.pid}${Date.now() % 1000}`;
    const p = spawn(process.execPath, args('exec', '--selector', 'role=edge', '--json', '--', 'sleep', marker), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((resolve) => p.on('close', (c) => resolve(c)));
    await waitFor(() => records(out).filter((r) => r['type'] === 'started').length === 2 && pgrep(`^sleep ${marker}`) === 2, 15_000, 'sleep running on both hosts');
    p.kill('SIGINT');
    assert.equal(await exited, Exit.Interrupted, stderr);
    await waitFor(() => pgrep(`^sleep ${marker}`) === 0, 10_000, 'the remote sleep killed');
    assert.doesNotMatch(stderr, /^error:/m, 'an interrupt is not reported as an error');
  });

  it('Ctrl-C during run exits 130 and cancels the plan on the hosts', async () => {
    const p = spawn(process.execPath, args('run', 'slow', '--selector', 'role=edge', '--json'), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.stdout.resume();
    const exited = new Promise<number | null>((resolve) => p.on('close', (c) => resolve(c)));
    const naps = () => pgrep(`^sleep ${SLOW_SECONDS}`);
    await waitFor(() => naps() === 2, 15_000, 'the step running on both hosts');
    p.kill('SIGINT');
    assert.equal(await exited, Exit.Interrupted, stderr);
    assert.match(stderr, /^interrupted: cancelling the plan on every host running it \(ferry jobs show j-\S+\)/m);
    assert.doesNotMatch(stderr, /^error:/m, 'an interrupt is not reported as an error');
    // The controller cancelled the step on both hosts: the naps end by themselves.
    await waitFor(() => naps() === 0, 15_000, 'the step stopped on both hosts');
  });
});
