// The simulated-sites harness (test/support/sites.ts) itself: a shaped
// uplink really caps throughput and its counters see the bytes that crossed
// it (and only that site's); real agents enrolled from inside a site's
// namespace to a controller in the root namespace join, hold a session, run
// an exec there and stage a bundle, and the bundle's bytes are counted on
// that site's uplink. Skips, saying why, where namespaces cannot be made.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import { BundleState } from '../../common/src/gen/ferry/v1/session.js';
import type { ExecLine } from '../../common/src/gen/ferry/v1/admin.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, joinString, startController, tempDir, waitFor } from '../support/fixtures.js';
import { repoRoot } from '../support/proc.js';
import { listNetns, sh } from '../support/netns.js';
import { Sites, type Site } from '../support/sites.js';

const agentBin = join(repoRoot(), 'bin', 'ferry-agent.js');
const MB = 1_000_000;

/** Runs argv inside a site to completion, with a bound. */
function runIn(site: Site, argv: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = site.spawn(argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`timed out in ${site.name}: ${argv.join(' ')}\n${stderr}`)); }, timeoutMs);
    p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
  });
}

describe('simulated sites (network namespaces, shaped uplinks)', function () {
  this.timeout(120_000);
  let sites: Sites | undefined;

  before(function () {
    const why = Sites.unavailable();
    if (why) {
      console.log(`      skipping: ${why}`);
      this.skip();
    }
    // 40 and 80 Mbit/s: slow enough that an unshaped veth (several Gbit/s here) cannot pass the upper bound.
    sites = Sites.create([
      { name: 'plant-a', link: { rateMbit: 40, lossPct: 0.5 } },
      { name: 'plant-b', link: { rateMbit: 80 } },
    ]);
  });
  after(async () => { await sites?.teardown(); });

  it('refuses bad layouts with a clear error and leaves nothing behind', () => {
    assert.throws(() => Sites.create([{ name: 'Bad Name', link: { rateMbit: 10 } }]), /site name "Bad Name": use 1-20 of a-z, 0-9, -/);
    assert.throws(() => Sites.create([{ name: 'x', link: { rateMbit: 0 } }]), /site x: rateMbit must be > 0/);
    assert.throws(() => Sites.create([{ name: 'x', link: { rateMbit: 1 } }, { name: 'x', link: { rateMbit: 1 } }]), /site names must be unique/);
    if (!Sites.canDelay()) assert.throws(() => Sites.create([{ name: 'x', link: { rateMbit: 1, rttMs: 40 } }]), /needs the netem qdisc, which this kernel lacks/);
    const mine = listNetns().filter((n) => n.startsWith(`ferry-sites-${process.pid}-`)).sort();
    assert.deepEqual(mine, sites!.namespaces().sort());
  });

  it('tears down everything it made, also the processes inside', async () => {
    const s = Sites.create([{ name: 'gone', link: { rateMbit: 10 } }]);
    const sleeper = s.site('gone').spawn(['sleep', '600'], { stdio: 'ignore' });
    const exited = new Promise((r) => sleeper.once('exit', r));
    await s.teardown(1_000);
    await exited;
    assert.ok(!listNetns().some((n) => s.namespaces().includes(n)), 'namespaces removed');
    const links = sh(['ip', '-o', 'link', 'show']);
    assert.ok(!links.includes(`f${s.id}h`), 'root-side link removed');
  });

  describe('an HTTP download from the root namespace', () => {
    let server: Server;
    const size = 12 * MB;
    const body = randomFile(size / 1024 / 1024);
    before(async () => {
      server = createServer((_q, s) => { s.writeHead(200, { 'content-length': body.length }); s.end(body); });
      await new Promise<void>((r) => server.listen(0, sites!.hub, r));
    });
    after(async () => { server?.closeAllConnections(); await new Promise((r) => server?.close(r)); });

    for (const name of ['plant-a', 'plant-b']) {
      it(`is capped at ${name}'s rate, and only ${name}'s uplink counts its bytes`, async () => {
        const site = sites!.site(name);
        const other = sites!.sites.find((s) => s !== site)!;
        const url = `http://${sites!.hub}:${(server.address() as { port: number }).port}/blob`;
        const b0 = site.bytes();
        const o0 = other.bytes();
        const r = await runIn(site, ['curl', '-sS', '--fail', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', url]);
        assert.equal(r.code, 0, r.stderr);
        const [got, secs] = r.stdout.trim().split(' ').map(Number) as [number, number];
        assert.equal(got, size);
        const mbit = (got * 8) / secs / 1e6;
        const cap = site.link.rateMbit;
        assert.ok(mbit <= cap * 1.1, `${name}: ${mbit.toFixed(1)} Mbit/s is above the ${cap} Mbit/s cap: the link is not shaped`);
        assert.ok(mbit >= cap * 0.5, `${name}: ${mbit.toFixed(1)} Mbit/s is far below the ${cap} Mbit/s cap`);
        const down = site.bytes().down - b0.down;
        // Headers (~4.5% at MTU 1500) and retransmissions on top of the payload; nothing else crosses this link now.
        assert.ok(down >= size && down <= size * 1.12, `${name}: ${down} bytes went down the uplink for a ${size}-byte body`);
        const frame = down / (site.bytes().downPackets - b0.downPackets);
        assert.ok(frame <= 1514, `${name}: ${frame.toFixed(0)}-byte frames on the uplink: offload segments were not cut into wire packets`);
        assert.ok(site.bytes().up - b0.up < size * 0.1, `${name}: the upload direction carried only ACKs`);
        assert.ok(other.bytes().down - o0.down < 64 * 1024, `${other.name}'s uplink did not carry ${name}'s download`);
        if ((site.link.lossPct ?? 0) > 0) assert.ok(site.dropped().down > 0, `${name}: the loss rule dropped nothing`);
      });
    }
  });

  describe('ferry agents inside a site', () => {
    let c: Controller;
    let admin: Admin;
    const dirs: string[] = [];
    const key = generateSigningKey();
    const ids: string[] = [];

    before(async () => {
      c = await startController({ listen: `${sites!.hub}:0` });
      admin = Admin.connect({ adminSocket: c.config.adminSocket });
      // Before enrolling: agents pin the signing keys they are given at enrollment.
      await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    });
    after(async () => {
      await sites?.stopProcesses();
      admin?.close();
      await cleanup(c);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    it('join from the site, connect, and run an exec in the site\'s namespace', async () => {
      const site = sites!.site('plant-a');
      for (const n of [1, 2]) {
        const state = tempDir('ferry-site-agent-');
        dirs.push(state);
        const js = await joinString(c, { labels: { site: 'plant-a' } });
        const j = await runIn(site, [process.execPath, agentBin, 'join', js, '--state', state, '--hostname', `a-${n}`, '--json']);
        assert.equal(j.code, 0, j.stderr);
        ids.push((JSON.parse(j.stdout.trim()) as { agentId: string }).agentId);
        site.spawn([process.execPath, agentBin, 'run', '--state', state], { stdio: 'ignore' });
      }
      await waitFor(async () => {
        const { agents } = await admin.call(admin.client.listAgents, { selector: 'site=plant-a', includeRevoked: false });
        return agents.filter((a) => ids.includes(a.id) && a.connected).length === 2;
      }, 30_000, 'two agents connected from plant-a');
      const lines: ExecLine[] = [];
      const targets = ids.map((agentId) => ({ agentId, hostname: agentId }));
      const summary = await c.ctx.exec.run({ selector: '', hosts: [], all: false, argv: ['sh', '-c', 'ip netns identify $$'], timeoutMs: 0, concurrency: 0, env: {}, cwd: '' }, 'test', targets,
        (ev) => { if (ev.event?.$case === 'line') lines.push(ev.event.value); }, new AbortController().signal);
      assert.equal(summary.succeeded, 2, JSON.stringify(summary));
      assert.deepEqual(lines.map((l) => l.line), [site.netns, site.netns]);
    });

    it('stage a bundle whose bytes cross the site\'s uplink once per agent', async () => {
      const site = sites!.site('plant-a');
      const other = sites!.site('plant-b');
      const b = memBundle('site-check', '1.0.0', { 'bin/tool': randomFile(3), 'images/app.tar': randomFile(5) }, key.privatePem);
      await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
      const bytes = b.manifest.files.reduce((s, f) => s + f.size, 0);
      const stored = await c.ctx.bundles.require('site-check', '1.0.0');
      const b0 = site.bytes();
      const o0 = other.bytes();
      const states = new Map<string, number>();
      await c.ctx.prefetch.run(stored, ids.map((agentId) => ({ agentId, hostname: agentId })), (ev) => { if (!ev.final) states.set(ev.agentId, ev.state); }, new AbortController().signal);
      assert.deepEqual([...states.values()], [BundleState.BUNDLE_STATE_READY, BundleState.BUNDLE_STATE_READY]);
      const down = site.bytes().down - b0.down;
      assert.ok(down >= 2 * bytes, `plant-a's uplink carried ${down} bytes for 2 × ${bytes}`);
      assert.ok(down <= 2 * bytes * 1.15, `plant-a's uplink carried ${down} bytes: more than 2 copies of ${bytes} plus overhead`);
      assert.ok(other.bytes().down - o0.down < 64 * 1024, 'plant-b\'s uplink carried none of it');
    });
  });
});
