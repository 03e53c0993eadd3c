import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle } from '../support/bundles.js';
import { jsonLines } from '../support/json-lines.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { repoRoot, run, type Result } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');

/**
 * Explicit targeting through the real `ferry` binary against a real
 * controller: commands that act on hosts refuse to run without targets,
 * a selector that matches nothing fails the same way everywhere, and
 * --list-hosts shows the targets without acting.
 */
describe('explicit targeting: --selector, --host, --all, --list-hosts', function () {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();
  const marks = tempDir('ferry-marks-');
  let ferry: (...args: string[]) => Promise<Result>;
  const idOf = (h: string) => agents.find((a) => a.hostname === h)!.id;
  const marked = () => readdirSync(marks).sort();

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    ferry = (...args) => run([process.execPath, ferryBin, '--admin-socket', c.config.adminSocket, ...args]);
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    const plan = `name: mark\nsteps:\n  - id: mark\n    type: exec\n    args:\n      argv: [touch, "${marks}/{{ facts.hostname }}"]\n`;
    await admin.call(admin.client.pushPlan, { signed: signPlan(plan, 'mark.yaml', key.privatePem) });
    const b = memBundle('edge', '1.0.0', { 'bin/tool': Buffer.from('#!/bin/sh\n') }, key.privatePem);
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    const fleet: Array<[string, Record<string, string>, boolean]> = [
      ['edge-1', { site: 'plant-7', role: 'edge' }, true],
      ['edge-2', { site: 'plant-9', role: 'edge' }, true],
      ['cloud-1', { site: 'plant-7', role: 'cloud' }, true],
      ['edge-3', { site: 'plant-3', role: 'edge' }, false], // enrolled, never connected
    ];
    for (const [h, labels, start] of fleet) agents.push(await enrollAgent(c, h, { labels, start }));
    await waitFor(() => agents.filter((a) => a.loop.state === 'connected').length === 3, 10_000, 'three connected agents');
  });
  after(async () => {
    admin.close();
    await cleanup(c, agents);
    rmSync(marks, { recursive: true, force: true });
  });

  it('refuses exec, run and bundle prefetch without targets (exit 2) before reaching any controller', async () => {
    const nowhere = join(marks, 'no-controller-here');
    const none = (...args: string[]) => run([process.execPath, ferryBin, '--data', nowhere, ...args]);
    const cases: Array<[string[], RegExp]> = [
      [['exec', '--', 'uptime'], /^error: exec needs targets: --selector LABELS .*--host NAME .*--all for every agent\n  hint: e\.g\. ferry exec --selector role=edge -- uptime; add --list-hosts/],
      [['run', 'mark'], /^error: run needs targets: --selector LABELS .*\n  hint: e\.g\. ferry run mark --selector role=edge;/],
      [['bundle', 'prefetch', 'edge:1.0.0'], /^error: bundle prefetch needs targets: --selector LABELS .*\n  hint: e\.g\. ferry bundle prefetch edge:1\.0\.0 --selector role=edge;/],
      [['exec', '--selector', '', '--', 'uptime'], /exec: an empty --selector or --host names no agent\n  hint: to act on every agent say --all/],
      [['run', 'mark', '--all', '--host', 'edge-1'], /run: --all already means every agent; it cannot be combined with --selector or --host/],
      [['exec', '--selector', 'site in (plant-7', '--', 'uptime'], /invalid selector at column 9: the set opened here has no closing "\)"\n  site in \(plant-7\n {10}\^/],
    ];
    const results = await Promise.all(cases.map(([args]) => none(...args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, cases[i]![1]);
      assert.doesNotMatch(r.stderr, /admin socket/, 'refused before connecting');
    });
    assert.deepEqual(marked(), [], 'nothing ran');
  });

  it('refuses an API call without targets too, whatever the client', async () => {
    const call = admin.client.exec({ selector: '', hosts: [], all: false, argv: ['touch', join(marks, 'api')], timeoutMs: 0, concurrency: 0, env: {}, cwd: '' });
    const err = await new Promise<FerryError>((resolve) => {
      call.on('error', (e) => resolve(fromServiceError(e)));
      call.on('data', () => {});
      call.on('end', () => resolve(undefined as unknown as FerryError));
    });
    assert.equal(err?.code, ErrorCode.InvalidArgument);
    assert.match(err.message, /^exec needs targets/);
    assert.deepEqual(marked(), []);
  });

  it('fails a selector that matches nothing with exit 2 and the same message on every command', async () => {
    const sel = 'site in (nowhere),role=edge';
    const runs = await Promise.all([
      ferry('exec', '--selector', sel, '--', 'touch', join(marks, 'x')),
      ferry('run', 'mark', '--selector', sel),
      ferry('bundle', 'prefetch', 'edge:1.0.0', '--selector', sel),
      ferry('rollout', 'create', '--plan', 'mark', '--selector', sel),
      ferry('agents', 'label', '--selector', sel, 'rack=r1'),
      ferry('exec', '--selector', sel, '--list-hosts'),
    ]);
    for (const r of runs) {
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.split('\n')[0], `error: no enrolled agent matches selector "${sel}"`);
      assert.match(r.stderr, /hint: see the agents and their labels with `ferry agents ls`/);
    }
    assert.deepEqual(marked(), [], 'nothing ran');
    assert.equal((await c.ctx.agents.list()).filter((a) => a.labels['rack']).length, 0, 'nothing was labelled');
  });

  it('--list-hosts shows who would be targeted, connected or not, and runs nothing', async () => {
    const sel = 'site in (plant-7,plant-3)';
    const text = await ferry('exec', '--selector', sel, '--list-hosts', '--', 'touch', join(marks, 'x'));
    assert.equal(text.code, 0, text.stderr);
    const rows = text.stdout.trim().split('\n').map((l) => l.split(/\s+/));
    assert.deepEqual(rows, [
      ['HOSTNAME', 'ID', 'STATE', 'LAST', 'SEEN'],
      ['cloud-1', idOf('cloud-1'), 'connected', 'now'],
      ['edge-1', idOf('edge-1'), 'connected', 'now'],
      ['edge-3', idOf('edge-3'), 'offline', 'never'],
    ]);
    assert.match(text.stderr, /^3 host\(s\) would be targeted, 1 of them offline now; nothing was run$/m);

    // Named hosts come first, in the order written, then selector matches; by hostname or id.
    const json = await ferry('run', 'mark', '--host', 'edge-2', '--host', idOf('edge-3'), '--selector', 'role notin (edge)', '--dry-run', '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(jsonLines(json.stdout), [
      { id: idOf('edge-2'), hostname: 'edge-2', connected: true },
      { id: idOf('edge-3'), hostname: 'edge-3', connected: false },
      { id: idOf('cloud-1'), hostname: 'cloud-1', connected: true },
    ]);

    // --all, and the ferry/arch label in bundle terms (the test agents report Node's "x64").
    const all = await ferry('bundle', 'prefetch', 'edge:1.0.0', '--all', '--list-hosts', '--json');
    const byArch = await ferry('bundle', 'prefetch', 'edge:1.0.0', '--selector', 'ferry/arch=amd64', '--list-hosts', '--json');
    assert.equal(all.code, 0, all.stderr);
    const names = (r: Result) => jsonLines<{ hostname: string }>(r.stdout).map((a) => a.hostname);
    assert.deepEqual(names(all), ['cloud-1', 'edge-1', 'edge-2', 'edge-3']);
    assert.deepEqual(names(byArch), names(all));

    const unknown = await ferry('exec', '--host', 'edge-9', '--list-hosts');
    assert.equal(unknown.code, 2, 'the same exit code as a selector that matches nothing');
    assert.match(unknown.stderr, /--host "edge-9" is not an enrolled agent \(by id or hostname\)/);

    assert.deepEqual(marked(), [], 'nothing ran');
    const { agents: listed } = await admin.call(admin.client.listAgents, { selector: '', includeRevoked: false });
    assert.ok(listed.every((a) => a.bundles.length === 0), 'nothing was staged');
  });

  it('acts on exactly the hosts named by --host and --selector, and on every agent with --all', async () => {
    const ex = await ferry('exec', '--host', 'edge-2', '--selector', 'site in (plant-7),role notin (edge)', '--', 'echo', 'hi');
    assert.equal(ex.code, 0, ex.stderr);
    assert.deepEqual(ex.stdout.trim().split('\n').sort(), ['cloud-1 | hi', 'edge-2 | hi']);
    assert.match(ex.stderr, /2 host\(s\): 2 ok, 0 failed, 0 offline/);
    const r = await ferry('run', 'mark', '--host', 'edge-1');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(marked(), ['edge-1']);
    const everyone = await ferry('exec', '--all', '--', 'true');
    assert.equal(everyone.code, 1, 'the offline host fails the exec');
    assert.match(everyone.stderr, /4 host\(s\): 3 ok, 0 failed, 1 offline/);
    assert.match(everyone.stderr, /^edge-3\s+offline/m);
  });

  it('agents label picks agents as every targeted command does: hostname or id, selector, --all; refuses none', async () => {
    const none = await ferry('agents', 'label', 'tier=x');
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /agents label needs targets/);
    const named = await ferry('agents', 'label', 'edge-1', idOf('edge-2'), 'tier=one', '--json');
    assert.equal(named.code, 0, named.stderr);
    assert.deepEqual(jsonLines<{ hostname: string }>(named.stdout).map((a) => a.hostname).sort(), ['edge-1', 'edge-2']);
    const typo = await ferry('agents', 'label', 'edge-99', 'tier=one');
    assert.equal(typo.code, 2, typo.stderr);
    const all = await ferry('agents', 'label', '--all', 'tier=all');
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /labelled 4 agent\(s\)/);
    assert.deepEqual((await c.ctx.agents.list()).map((a) => a.labels['tier']), ['all', 'all', 'all', 'all']);
    const both = await ferry('agents', 'label', '--all', '--selector', 'role=edge', 'tier=x');
    assert.equal(both.code, 2, both.stderr);
    const cleared = await ferry('agents', 'label', '--all', '--remove', 'tier');
    assert.equal(cleared.code, 0, cleared.stderr);
  });
});
