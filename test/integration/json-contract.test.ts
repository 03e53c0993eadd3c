import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { Exit } from '../../common/src/exit-codes.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import { memBundle } from '../support/bundles.js';
import type { Controller } from '../../controller/src/controller.js';
import { jsonLines } from '../support/json-lines.js';
import { pgrep, pgrepPids } from '../support/pgrep.js';
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

/** docs/json.md's field tables: record kind (the `## heading`) to its field names. */
function documentedKinds(): Map<string, string[]> {
  const kinds = new Map<string, string[]>();
  let kind: string | undefined;
  for (const line of readFileSync(join(repoRoot(), 'docs', 'json.md'), 'utf8').split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) kind = /^\S+$/.test(h[1]!) ? h[1] : undefined;
    const row = /^\| `([A-Za-z]+)` \|/.exec(line);
    if (row && kind) kinds.set(kind, [...(kinds.get(kind) ?? []), row[1]!]);
  }
  return kinds;
}

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
  function conforms(kind: string, recs: Array<Record<string, unknown>>): void {
    const fields = docs.get(kind);
    assert.ok(fields, `docs/json.md has no section "## ${kind}"`);
    assert.ok(recs.length > 0, `no ${kind} record to check`);
    for (const r of recs) assert.deepEqual(Object.keys(r).sort(), [...fields].sort(), `${kind}: ${JSON.stringify(r)}`);
    checked.add(kind);
  }

  /** Runs `ferry ARGS --json` (the flag goes before a `--`). */
  async function json(...a: string[]): Promise<Array<Record<string, unknown>>> {
    const dash = a.indexOf('--');
    const r = await ferry(...(dash < 0 ? [...a, '--json'] : [...a.slice(0, dash), '--json', ...a.slice(dash)]));
    assert.equal(r.code, 0, `${a.join(' ')}: ${r.stdout}${r.stderr}`);
    return records(r.stdout);
  }

  before(async () => {
    c = await startController();
    const key = generateSigningKey();
    const admin = Admin.connect({ adminSocket: c.config.adminSocket });
    try {
      // Hosts trust the keys they are given at enrollment.
      await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
      await admin.call(admin.client.pushPlan, { signed: signPlan(PLAN, 'hello.yaml', key.privatePem) });
      await admin.call(admin.client.pushPlan, { signed: signPlan(SLOW, 'slow.yaml', key.privatePem) });
      const b = memBundle('edge', '1.0.0', { 'bin/tool': Buffer.from('#!/bin/sh\n') }, key.privatePem);
      await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
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
    const joined = await agent('join', await joinString(c), '--state', stateDir, '--hostname', 'field-1');
    assert.equal(joined.code, Exit.Ok, joined.stderr);
    const after = await agent('status', '--state', stateDir, '--json');
    assert.equal(after.code, Exit.Failure, `enrolled, not running: ${after.stderr}`);
    conforms('agent-status', [...records(before.stdout), ...records(after.stdout)]);
    assert.deepEqual([records(before.stdout)[0]!['state'], records(after.stdout)[0]!['state']], ['not-enrolled', 'not-running']);
    assert.equal(typeof records(after.stdout)[0]!['certNotAfterMs'], 'number');
    const version = await agent('version', '--state', stateDir, '--json');
    assert.equal(version.code, Exit.Ok, version.stderr);
    conforms('agent-version', records(version.stdout));

    const err = await ferry('agents', 'show', 'no-such-host', '--json');
    assert.notEqual(err.code, 0);
    conforms('error', records(err.stdout));

    // Every documented kind was checked here.
    assert.deepEqual([...docs.keys()].filter((k) => !checked.has(k)), []);
  });

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

  it('Ctrl-C during run stops following it and exits 130, and says the plan goes on on the hosts', async () => {
    const p = spawn(process.execPath, args('run', 'slow', '--selector', 'role=edge', '--json'), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.stdout.resume();
    const exited = new Promise<number | null>((resolve) => p.on('close', (c) => resolve(c)));
    const naps = () => pgrep(`^sleep ${SLOW_SECONDS}`);
    await waitFor(() => naps() === 2, 15_000, 'the step running on both hosts');
    p.kill('SIGINT');
    assert.equal(await exited, Exit.Interrupted, stderr);
    // The controller cannot cancel a plan job yet (no cancel in RunPlan), so the CLI must not claim it did.
    assert.match(stderr, /^interrupted: stopped following the run; it goes on on the hosts \(ferry jobs show j-\S+\)/m);
    assert.doesNotMatch(stderr, /^error:/m, 'an interrupt is not reported as an error');
    // Tidy up the naps this test started (by pid, only these).
    for (const pid of pgrepPids(`^sleep ${SLOW_SECONDS}`)) process.kill(pid, 'SIGKILL');
  });
});
