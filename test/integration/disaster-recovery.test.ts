import 'reflect-metadata';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { ErrorCode } from '../../common/src/errors.js';
import { Exit } from '../../common/src/exit-codes.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { jsonLines } from '../support/json-lines.js';
import { cleanup, enrollAgent, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { repoRoot, run } from '../support/proc.js';

const ferryBin = join(repoRoot(), 'bin', 'ferry.js');
const PASS = 'correct horse battery staple';

/**
 * docs/disaster-recovery.md, end to end with real gRPC agents: back up a
 * running controller, lose its data directory, restore it with the real
 * CLI, start a controller on the old address, and the agents reconnect with
 * the identities they have (no new enrollment); bundles are still served.
 */
describe('disaster recovery: backup, destroy, restore, agents reconnect', function () {
  this.timeout(120_000);
  let c: Controller | undefined;
  const agents: TestAgent[] = [];
  const dir = tempDir('ferry-dr-');
  const data = join(dir, 'data');
  const backup = join(dir, 'ferry.fbak');
  const ferry = (args: string[], env: NodeJS.ProcessEnv = { FERRY_BACKUP_PASSPHRASE: PASS }) => run([process.execPath, ferryBin, ...args], { env, timeoutMs: 60_000 });
  const key = generateSigningKey();
  const bundle = memBundle('edge', '1.0.0', { 'bin/tool': randomFile(2), 'manifests/a.yaml': Buffer.from('kind: ConfigMap\n') }, key.privatePem);

  after(async () => {
    await cleanup(c, agents);
    rmSync(dir, { recursive: true, force: true });
  });

  it('restores a destroyed data directory and the agents reconnect without enrolling again', async () => {
    c = await startController({}, data);
    const port = c.port;
    const pin = c.pin;
    const admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    await pushBundle(admin, bundle.signed, byDigest(async (d) => bundle.chunks.get(d)!), { progress: false });
    admin.close();
    for (const h of ['edge-1', 'edge-2']) agents.push(await enrollAgent(c, h, { labels: { site: 'plant-7' } }));
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'agents connected');

    // Online: the controller keeps serving while the backup is taken.
    const b = await ferry(['controller', 'backup', '--data', data, '--out', backup, '--json']);
    assert.equal(b.code, 0, b.stdout + b.stderr);
    const [rec] = jsonLines<Record<string, unknown>>(b.stdout);
    assert.equal(rec!['type'], 'controller-backup');
    assert.equal(rec!['caPin'], pin);
    assert.equal(rec!['chunks'], true);
    assert.equal(statSync(backup).mode & 0o777, 0o600);
    assert.ok(!readFileSync(backup).includes('BEGIN PRIVATE KEY'), 'no key in the clear');
    assert.equal(agents.every((a) => a.loop.state === 'connected'), true);

    // A host enrolled after the backup: the restored controller cannot know it.
    const late = await enrollAgent(c, 'edge-late');
    agents.push(late);
    await waitFor(() => late.loop.state === 'connected', 10_000, 'late agent connected');

    // The disaster: the controller and its data directory are gone.
    await c.stop(1_000);
    c = undefined;
    rmSync(data, { recursive: true, force: true });

    const r = await ferry(['controller', 'restore', backup, '--data', data, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const [restored] = jsonLines<Record<string, unknown>>(r.stdout);
    assert.equal(restored!['type'], 'controller-restore');
    assert.equal(restored!['replaced'], false);
    assert.equal(statSync(data).mode & 0o777, 0o700);
    assert.equal(statSync(join(data, 'pki', 'ca.key')).mode & 0o777, 0o600);

    c = await startController({ listen: `127.0.0.1:${port}` }, data);
    assert.equal(c.pin, pin, 'the same CA');
    const before = agents.slice(0, 2);
    await waitFor(() => before.every((a) => c!.ctx.sessions.get(a.id) !== undefined), 30_000, 'agents reconnected to the restored controller');
    // Reconnected with the identities they had: no enrollment happened.
    const enrolled = (await c.metrics.scrape()).body.match(/^ferry_enrollments_total\{outcome="enrolled",code=""(?:,replica="[^"]*")?\} (\d+)$/m);
    assert.equal(enrolled?.[1], '0');
    assert.deepEqual((await c.ctx.agents.list()).map((a) => a.id).sort(), before.map((a) => a.id).sort());
    assert.equal((await c.ctx.agents.get(before[0]!.id))?.labels['site'], 'plant-7');
    // The host enrolled after the backup is told it is not enrolled here (docs: it joins again).
    await waitFor(() => late.loop.fatal?.code === ErrorCode.NotEnrolled, 30_000, 'the late agent refused as not enrolled');

    // Bundles and their chunks came back: the restored controller serves them.
    const stored = await c.ctx.bundles.require('edge', '1.0.0');
    const events: Array<{ state: number; error: string }> = [];
    await c.ctx.prefetch.run(stored, [{ agentId: before[0]!.id, hostname: 'edge-1' }], (ev) => events.push(ev), new AbortController().signal);
    const dirOf = before[0]!.loop.work.bundles.filesDir(stored.id);
    assert.ok(readFileSync(join(dirOf, 'bin/tool')).equals(bundle.files.get('bin/tool')!), JSON.stringify(events));
  });

  describe('refusals (nothing is changed by any of them)', () => {
    it('a data directory that is not empty, without --force', async () => {
      const r = await ferry(['controller', 'restore', backup, '--data', data]);
      assert.equal(r.code, Exit.Usage, r.stderr);
      assert.match(r.stderr, /is not empty; restore refuses/);
      assert.match(r.stderr, /--force/);
    });

    it('--force over a data directory a running controller holds', async () => {
      const r = await ferry(['controller', 'restore', backup, '--data', data, '--force']);
      assert.equal(r.code, Exit.Usage, r.stderr);
      assert.match(r.stderr, /stop the controller/);
      assert.ok(c && c.state === 'running');
    });

    it('a wrong passphrase, with a clear error', async () => {
      const target = join(dir, 'wrong-pass');
      const r = await ferry(['controller', 'restore', backup, '--data', target], { FERRY_BACKUP_PASSPHRASE: 'not the passphrase' });
      assert.equal(r.code, Exit.Failure, r.stderr);
      assert.match(r.stderr, /the passphrase does not open this backup/);
      assert.equal(existsSync(target), false);
      assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.restore-')), [], 'no staging directory left');
    });

    it('a truncated file, and an altered one, leaving an existing directory as it was (--force)', async () => {
      const victim = join(dir, 'victim');
      const seed = await ferry(['controller', 'restore', backup, '--data', victim]);
      assert.equal(seed.code, 0, seed.stderr);
      const dbBefore = readFileSync(join(victim, 'ferry.db'));
      const size = statSync(backup).size;
      const cut = join(dir, 'cut.fbak');
      writeFileSync(cut, readFileSync(backup));
      truncateSync(cut, size - 100);
      const t = await ferry(['controller', 'restore', cut, '--data', victim, '--force']);
      assert.equal(t.code, Exit.Failure, t.stderr);
      assert.match(t.stderr, /truncated/);
      const bent = join(dir, 'bent.fbak');
      const bytes = readFileSync(backup);
      bytes[Math.floor(size / 2)] ^= 0x01;
      writeFileSync(bent, bytes);
      const a = await ferry(['controller', 'restore', bent, '--data', victim, '--force']);
      assert.equal(a.code, Exit.Failure, a.stderr);
      assert.match(a.stderr, /segment \d+ .* was altered or damaged/);
      assert.ok(readFileSync(join(victim, 'ferry.db')).equals(dbBefore), 'the directory is as it was');
      assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.restore-') || n.includes('.replaced-')), []);
      const notBackup = join(dir, 'not.fbak');
      writeFileSync(notBackup, 'hello');
      const n = await ferry(['controller', 'restore', notBackup, '--data', join(dir, 'x')]);
      assert.match(n.stderr, /not a Ferry controller backup/);
    });

    it('--force replaces a stopped controller\'s directory', async () => {
      const victim = join(dir, 'victim');
      writeFileSync(join(victim, 'stray'), 'x');
      const r = await ferry(['controller', 'restore', backup, '--data', victim, '--force', '--json']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(jsonLines<Record<string, unknown>>(r.stdout)[0]!['replaced'], true);
      assert.equal(existsSync(join(victim, 'stray')), false);
      assert.deepEqual(readdirSync(dirname(victim)).filter((n) => n.includes('.replaced-')), []);
    });

    it('a passphrase on the command line, a missing one, a short one, and a file others can read', async () => {
      const onArgv = await ferry(['controller', 'backup', '--data', data, '--out', join(dir, 'a.fbak'), '--passphrase', PASS], {});
      assert.equal(onArgv.code, Exit.Usage, onArgv.stderr);
      const none = await ferry(['controller', 'backup', '--data', data, '--out', join(dir, 'a.fbak')], { FERRY_BACKUP_PASSPHRASE: '' });
      assert.equal(none.code, Exit.Usage);
      assert.match(none.stderr, /no backup passphrase given[\s\S]*never on the command line/);
      const short = await ferry(['controller', 'backup', '--data', data, '--out', join(dir, 'a.fbak')], { FERRY_BACKUP_PASSPHRASE: 'short' });
      assert.equal(short.code, Exit.Usage);
      assert.match(short.stderr, /at least 12 are needed/);
      const file = join(dir, 'pass.txt');
      writeFileSync(file, `${PASS}\n`);
      chmodSync(file, 0o644);
      const open = await ferry(['controller', 'backup', '--data', data, '--out', join(dir, 'a.fbak'), '--passphrase-file', file], {});
      assert.equal(open.code, Exit.Usage);
      assert.match(open.stderr, /can be read by others[\s\S]*chmod 600/);
      chmodSync(file, 0o600);
      const ok = await ferry(['controller', 'backup', '--data', data, '--out', join(dir, 'a.fbak'), '--passphrase-file', file, '--no-chunks'], { FERRY_BACKUP_PASSPHRASE: '' });
      assert.equal(ok.code, 0, ok.stderr);
      const again = await ferry(['controller', 'backup', '--data', data, '--out', join(dir, 'a.fbak')]);
      assert.equal(again.code, 1, again.stderr);
      assert.match(again.stderr, /exists; a backup never replaces a file/);
    });
  });
});
