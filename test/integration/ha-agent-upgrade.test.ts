/**
 * An agent upgrade reaches a host whose session is on a replica that does
 * not run the scheduler (two in-process replicas, one PostgreSQL database):
 * that replica's mailbox sends it (rollouts/upgrade-mailbox.ts), the host
 * stages the release through that replica's chunk service, and its report,
 * recorded there, is what the scheduler on the other replica reads. The
 * agent runs from node, so it refuses at its check of the staged binary
 * (a random file: "does not run on this host") — which it can only say
 * after it received the upgrade and staged the release.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { platformArch } from '../../common/src/arch.js';
import { releaseName } from '../../common/src/bundle/agent-release.js';
import { generateSigningKey, signManifest } from '../../common/src/bundle/manifest.js';
import { silentLogger } from '../../common/src/log.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, enrollAgent, fakeFacts, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { jsonLines } from '../support/json-lines.js';
import { postgresMissing, sharedPostgres } from '../support/postgres.js';
import { repoRoot, run } from '../support/proc.js';

describe('an agent upgrade to a host on a replica that is not the scheduler (PostgreSQL)', function () {
  this.timeout(90_000);
  const cs: Controller[] = [];
  const agents: TestAgent[] = [];
  const admins: Admin[] = [];
  const key = generateSigningKey();
  const dir = tempDir('ferry-ha-upgrade-');
  const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
  const ferry = (c: Controller, ...args: string[]) => run([process.execPath, ferryBin, ...args, '--admin-socket', c.config.adminSocket], { timeoutMs: 60_000 });

  before(async function () {
    const missing = postgresMissing();
    if (missing) {
      console.warn(`  skipped: ${missing}`);
      this.skip();
    }
    const store = await (await sharedPostgres()).createDatabase();
    for (let i = 0; i < 2; i++) cs.push(await startController({ store, 'lease-ttl': '1s' }, tempDir(`ferry-upg-replica${i}-`)));
    for (const c of cs) admins.push(Admin.connect({ adminSocket: c.config.adminSocket }));
    await admins[0]!.call(admins[0]!.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    writeFileSync(join(dir, 'ops.key'), key.privatePem, { mode: 0o600 });
  });
  after(async () => {
    for (const a of admins) a.close();
    await cleanup(undefined, agents);
    for (const c of cs) await c.stop(1_000).catch(() => undefined);
    for (const c of cs) rmSync(c.config.dataDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('the replica holding the session sends the upgrade; the host stages it there and its report fails the host on the scheduler', async () => {
    await waitFor(() => cs.some((c) => c.leadership.isLeader()), 10_000, 'a scheduler replica');
    const leader = cs.find((c) => c.leadership.isLeader())!;
    const other = cs.find((c) => c !== leader)!;
    // The agent dials only the replica that does not schedule.
    const a = await enrollAgent(other, 'edge-ha', { start: false, labels: { role: 'edge' } });
    const { identity, keyPem, certPem, caPem } = a.state.load();
    a.state.saveEnrollment(keyPem, certPem, caPem, { ...identity, addresses: [other.address] });
    a.loop = new SessionLoop({ state: a.state, facts: async () => ({ ...fakeFacts('edge-ha'), arch: platformArch() }), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
    a.loop.start();
    agents.push(a);
    await waitFor(() => other.ctx.sessions.get(a.id) !== undefined, 10_000, 'the agent connected to the non-scheduler replica');
    assert.equal(leader.ctx.sessions.get(a.id), undefined);

    // A release-shaped bundle (a random file: no agent binary) pushed through the scheduler's replica.
    const b = memBundle(releaseName(platformArch()), '0.0.9', { 'ferry-agent': randomFile(0.2) }, key.privatePem);
    const manifest = { ...b.manifest, arch: [platformArch()], files: b.manifest.files.map((f) => ({ ...f, mode: 0o755 })) };
    const leaderAdmin = admins[cs.indexOf(leader)]!;
    await pushBundle(leaderAdmin, signManifest(manifest, key.privatePem), byDigest(async (d) => b.chunks.get(d)!), { progress: false });

    const created = await ferry(leader, 'agents', 'upgrade', '--to', '0.0.9', '--host', 'edge-ha', '--json');
    assert.equal(created.code, 0, created.stderr);
    const id = jsonLines<{ id: string }>(created.stdout)[0]!.id;
    type Show = { rollout: { state: string; paused: boolean }; hosts: Array<{ hostname: string; state: string; message: string | null }> };
    let show: Show | undefined;
    await waitFor(async () => {
      show = JSON.parse((await ferry(leader, 'rollout', 'show', id, '--json')).stdout) as Show;
      return show.hosts[0]!.state === 'failed';
    }, 30_000, () => `the host's outcome on the scheduler: ${JSON.stringify(show?.hosts)}`);
    // It staged the release (through the other replica's chunk service) and checked the binary: only then "does not run".
    assert.match(show!.hosts[0]!.message!, /^refused \(UPGRADE_REFUSED\): .*ferry-agent does not run on this host/);
    assert.ok(a.loop.work.held().some((h) => h.name === releaseName(platformArch()) && h.version === '0.0.9'), 'the release is staged on the host');
    // The session never moved: the upgrade went out from the replica that holds it, and the report was recorded there.
    assert.ok(other.ctx.sessions.get(a.id) && !leader.ctx.sessions.get(a.id));
    const rec = (await other.ctx.agentUpgrades.forAgent(a.id))[0]!;
    assert.deepEqual([rec.outcome, rec.toVersion, rec.upgradeId.startsWith('j-')], ['refused', '0.0.9', true]);
  });
});
