/**
 * Agent releases and `ferry agents upgrade` against a real controller, the
 * real `ferry` CLI, the real single binaries (dist/, built here if stale)
 * and real agents (in this process, over mTLS). The agents here run from
 * node, not as the single binary under systemd, so every upgrade ends
 * refused at the last check before the switch ("runs from node and a
 * script") — after the controller sent it over the session and the agent
 * verified the release and staged it through the chunk path. The switch,
 * restart, commit and rollback are the e2e test's (test/e2e/
 * agent-upgrade-rollout.test.ts, real systemd).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { releaseName } from '../../common/src/bundle/agent-release.js';
import { generateSigningKey, signManifest } from '../../common/src/bundle/manifest.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { assertConforms, documentedKinds } from '../support/json-docs.js';
import { jsonLines } from '../support/json-lines.js';
import { repoRoot, run } from '../support/proc.js';

describe('agent releases and ferry agents upgrade (real controller, CLI and agents)', function () {
  this.timeout(120_000);
  const root = repoRoot();
  const ferryBin = join(root, 'bin', 'ferry.js');
  const amd64 = join(root, 'dist', 'ferry-agent-linux-amd64');
  const arm64 = join(root, 'dist', 'ferry-agent-linux-arm64');
  const oldDir = join(root, 'dist', 'e2e-upgrade-0.0.9');
  const old = join(oldDir, 'ferry-agent-linux-amd64');
  const dir = tempDir('ferry-release-');
  const key = generateSigningKey();
  const stranger = generateSigningKey();
  let c: Controller;
  let admin: Admin;
  const agents: TestAgent[] = [];
  const ferry = (...args: string[]) => run([process.execPath, ferryBin, ...args, '--admin-socket', c.config.adminSocket], { timeoutMs: 90_000 });

  before(async function () {
    this.timeout(300_000);
    for (const args of [['--if-stale'], ['--if-stale', '--arch', 'amd64', '--agent-version', '0.0.9', '--out-dir', oldDir]]) {
      const b = spawnSync(process.execPath, [join(root, 'scripts', 'build-agent.mjs'), ...args], { cwd: root, encoding: 'utf8' });
      assert.equal(b.status, 0, b.stdout + b.stderr);
    }
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    writeFileSync(join(dir, 'ops.key'), key.privatePem, { mode: 0o600 });
    writeFileSync(join(dir, 'stranger.key'), stranger.privatePem, { mode: 0o600 });
    writeFileSync(join(dir, 'script.sh'), '#!/bin/sh\necho 0.1.0\n', { mode: 0o755 });
    for (const name of ['edge-1', 'edge-2']) agents.push(await enrollAgent(c, name, { labels: { role: 'edge' } }));
    await waitFor(() => agents.every((a) => c.ctx.sessions.get(a.id) !== undefined), 10_000, 'agents connected');
  });
  after(async () => {
    admin?.close();
    await cleanup(c, agents);
  });

  it('release add signs one bundle per architecture and sends only missing chunks; ls and rm', async () => {
    const added = await ferry('agents', 'release', 'add', amd64, arm64, '--key', join(dir, 'ops.key'), '--json');
    assert.equal(added.code, 0, added.stderr);
    const recs = jsonLines<{ version: string; arch: string; name: string; bytesSent: number; unchanged: boolean }>(added.stdout);
    assert.deepEqual(recs.map((r) => [r.arch, r.name, r.version, r.unchanged]), [['amd64', 'ferry-agent-linux-amd64', '0.1.0', false], ['arm64', 'ferry-agent-linux-arm64', '0.1.0', false]]);
    const again = jsonLines<{ bytesSent: number; unchanged: boolean }>((await ferry('agents', 'release', 'add', amd64, '--key', join(dir, 'ops.key'), '--json')).stdout);
    assert.deepEqual(again.map((r) => [r.unchanged, r.bytesSent]), [[true, 0]]);
    // 0.0.9 shares most chunks with 0.1.0 (the same node runtime): far less than its size moves.
    const older = jsonLines<{ bytesSent: number; sizeBytes: number }>((await ferry('agents', 'release', 'add', old, '--key', join(dir, 'ops.key'), '--json')).stdout)[0]!;
    assert.ok(older.bytesSent < older.sizeBytes / 2, `sent ${older.bytesSent} of ${older.sizeBytes}`);
    const ls = jsonLines<{ version: string; arch: string }>((await ferry('agents', 'release', 'ls', '--json')).stdout);
    const docs = documentedKinds();
    assertConforms(docs, 'agent-release.added', [...recs, ...again, older]);
    assertConforms(docs, 'agent-release', ls);
    assert.deepEqual(ls.map((r) => `${r.version}/${r.arch}`).sort(), ['0.0.9/amd64', '0.1.0/amd64', '0.1.0/arm64']);
    const rm = await ferry('agents', 'release', 'rm', '0.1.0', '--arch', 'arm64', '--json');
    assert.equal(rm.code, 0, rm.stderr);
    const removed = jsonLines<{ version: string; arch: string }>(rm.stdout);
    assert.deepEqual(removed.map((r) => `${r.version}/${r.arch}`), ['0.1.0/arm64']);
    assertConforms(docs, 'agent-release.removed', removed);
    const left = jsonLines<{ version: string; arch: string }>((await ferry('agents', 'release', 'ls', '--json')).stdout);
    assert.deepEqual(left.map((r) => `${r.version}/${r.arch}`).sort(), ['0.0.9/amd64', '0.1.0/amd64']);
  });

  it('release add refuses unsigned releases, untrusted keys, files that are no agent, and mixed versions, before sending anything', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[amd64], /needs --key KEY: releases are signed/],
      [[amd64, '--key', join(dir, 'stranger.key')], /does not trust ed25519:[0-9a-f]+, the key this bundle is signed with/],
      [[join(dir, 'script.sh'), '--key', join(dir, 'ops.key')], /script\.sh is not a ferry-agent binary: not an ELF executable/],
      [['/bin/true', '--key', join(dir, 'ops.key')], /\/bin\/true is not a ferry-agent binary: a plain executable/],
      [[amd64, old, '--key', join(dir, 'ops.key')], /both for amd64/],
      [[amd64, '--version', '0.0.7', '--key', join(dir, 'ops.key')], /--version 0\.0\.7, but the binary says it is 0\.1\.0/],
      [[arm64, '--key', join(dir, 'ops.key')], /cannot run .*ferry-agent-linux-arm64 on this amd64 machine to learn the version.*--version/s],
    ];
    for (const [args, want] of cases) {
      const r = await ferry('agents', 'release', 'add', ...args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, want, args.join(' '));
    }
  });

  it('the controller refuses a release-named bundle that is not an installable release (version rules, shape)', async () => {
    const release = (version: string, files: Record<string, Buffer>, o: { mode?: number; arch?: string; name?: string } = {}) => {
      const b = memBundle(o.name ?? releaseName('amd64'), version, files, key.privatePem);
      const manifest = { ...b.manifest, arch: [o.arch ?? 'amd64'], files: b.manifest.files.map((f) => ({ ...f, mode: o.mode ?? 0o755 })) };
      return { ...b, manifest, signed: signManifest(manifest, key.privatePem) };
    };
    const push = (b: ReturnType<typeof release>) => pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    const bin = { 'ferry-agent': randomFile(0.1) };
    const refused = async (b: ReturnType<typeof release>, want: RegExp) =>
      assert.rejects(push(b), (e: FerryError) => e.code === ErrorCode.BundleInvalid && want.test(e.message));
    await refused(release('0.2.0', bin), /agent release 0\.2\.0 is newer than this controller \(0\.1\.0\)/);
    await refused(release('0.1.1', bin), /newer than this controller/);
    await refused(release('1.0.0', bin), /newer than this controller/);
    await refused(release('0.0.3', { 'ferry-agent': randomFile(0.1), 'extra.sh': randomFile(0.01) }), /must hold exactly one file, ferry-agent \(it holds extra\.sh, ferry-agent\)/);
    await refused(release('0.0.3', bin, { mode: 0o644 }), /ferry-agent must have mode 0755 \(it has 0644\)/);
    await refused(release('0.0.3', bin, { name: releaseName('arm64') }), /ferry-agent-linux-arm64 must be for exactly arm64 \(its manifest says \["amd64"\]\)/);
    await refused(release('0.0.3', bin, { name: 'ferry-agent-linux-x86_64', arch: 'x86_64' }), /unknown architecture "x86_64" \(did you mean amd64\?\)/);
    await refused(release('latest', bin), /"latest" is not a version/);
    // Nothing of the refused releases was committed.
    const { bundles } = await admin.call(admin.client.listBundles, {});
    assert.deepEqual(bundles.filter((b) => b.version !== '0.1.0' && b.version !== '0.0.9').map((b) => `${b.name}:${b.version}`), []);
  });

  it('agents upgrade: the rollout sends each host its release, which it verifies and stages; a refusal counts as failed and pauses the rollout', async () => {
    const none = await ferry('agents', 'upgrade', '--to', '0.0.5', '--all');
    assert.notEqual(none.code, 0, none.stderr);
    assert.match(none.stderr, /there is no agent release 0\.0\.5 on the controller/);
    const same = await ferry('agents', 'upgrade', '--to', '0.1.0', '--all');
    assert.notEqual(same.code, 0);
    assert.match(same.stderr, /every target \(2\) already runs ferry-agent 0\.1\.0/);
    const noTargets = await ferry('agents', 'upgrade', '--to', '0.0.9');
    assert.equal(noTargets.code, 2);
    assert.match(noTargets.stderr, /needs --selector, --host or --all/);

    const created = await ferry('agents', 'upgrade', '--to', '0.0.9', '--selector', 'role=edge', '--waves', '1,100%', '--json');
    assert.equal(created.code, 0, created.stderr);
    const ro = jsonLines<{ id: string; kind: string; agentVersion: string; plan: string; planId: string | null; hostCount: number }>(created.stdout)[0]!;
    assertConforms(documentedKinds(), 'rollout', [ro]);
    assert.deepEqual([ro.kind, ro.agentVersion, ro.plan, ro.planId, ro.hostCount], ['agent-upgrade', '0.0.9', 'ferry-agent 0.0.9', null, 2]);
    type Show = { rollout: { state: string; paused: boolean; pauseReason: string | null }; hosts: Array<{ hostname: string; state: string; message: string | null }> };
    let show: Show | undefined;
    await waitFor(async () => {
      show = JSON.parse((await ferry('rollout', 'show', ro.id, '--json')).stdout) as Show;
      return show.rollout.paused && show.hosts.some((h) => h.state === 'failed');
    }, 60_000, 'the first wave failed and paused the rollout');
    const failed = show!.hosts.filter((h) => h.state === 'failed');
    assert.equal(failed.length, 1, 'only wave 1 ran');
    assert.match(failed[0]!.message!, /^refused \(UPGRADE_REFUSED\): this agent runs from node and a script/);
    assert.ok(show!.hosts.some((h) => h.state === 'pending'), 'wave 2 did not start');
    assert.match(show!.rollout.pauseReason ?? '', /budget/);
    // The host got the release through the chunk path, verified, and holds it as a bundle.
    const host = agents.find((a) => a.hostname === failed[0]!.hostname)!;
    assert.ok(host.loop.work.held().some((b) => b.name === 'ferry-agent-linux-amd64' && b.version === '0.0.9'), JSON.stringify(host.loop.work.held()));
    const rec = (await c.ctx.agentUpgrades.forAgent(host.id))[0]!;
    assert.deepEqual([rec.outcome, rec.fromVersion, rec.toVersion, rec.errorCode], ['refused', '0.1.0', '0.0.9', 'UPGRADE_REFUSED']);
    // The host's log in the rollout: each step the agent reported, in order.
    const logs = await ferry('rollout', 'logs', ro.id, '--host', host.hostname);
    assert.equal(logs.code, 0, logs.stderr);
    const lines = logs.stdout.trim().split('\n');
    assert.equal(lines.length, 3, logs.stdout);
    assert.equal(lines[0], 'upgrade 0.1.0 → 0.0.9: staging the release');
    assert.match(lines[1]!, /^upgrade 0\.1\.0 → 0\.0\.9: release staged and verified: [\d.]+ MiB fetched of [\d.]+ MiB \(the rest from the running binary and earlier releases\)$/);
    assert.match(lines[2]!, /^upgrade 0\.1\.0 → 0\.0\.9 refused \(UPGRADE_REFUSED\): this agent runs from node and a script/);
    const logRecs = jsonLines<{ type: string; kind: string; hostJobId: string; text: string }>((await ferry('rollout', 'logs', ro.id, '--host', host.hostname, '--json')).stdout);
    assertConforms(documentedKinds(), 'rollout.log', logRecs);
    assert.deepEqual(logRecs.map((l) => l.kind), ['upgrade', 'upgrade', 'upgrade']);
    assert.equal(logRecs[0]!.hostJobId, rec.upgradeId);
    // Abort: the pending host is cancelled, the rollout ends aborted.
    assert.equal((await ferry('rollout', 'abort', ro.id)).code, 0);
    await waitFor(async () => (JSON.parse((await ferry('rollout', 'show', ro.id, '--json')).stdout) as Show).rollout.state === 'aborted', 20_000, 'aborted');
  });
});
