import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleId, generateSigningKey } from '../../common/src/bundle/manifest.js';
import { BundleState, type BundleProgress } from '../../common/src/gen/ferry/v1/session.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { GrpcChunkSource } from '../../agent/src/bundles/grpc-chunk-source.js';
import { relayCreds } from '../../agent/src/grpc-creds.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { Exit } from '../../common/src/exit-codes.js';
import { memBundle, randomFile, type MemBundle } from '../support/bundles.js';
import { assertConforms, documentedKinds } from '../support/json-docs.js';
import { jsonLines } from '../support/json-lines.js';
import { repoRoot, run } from '../support/proc.js';
import { cleanup, startController, waitFor, type TestAgent } from '../support/fixtures.js';
import { controllerChunks, enroll, restart, stage, uniqueBytes } from '../support/relay-agents.js';

describe('site relays: agents pull chunks through their relay and fall back by themselves', function () {
  this.timeout(60_000);
  let c: Controller;
  let admin: Admin;
  const key = generateSigningKey();
  let relay: TestAgent;
  const site: TestAgent[] = [];
  let version = 0;

  /** A fresh bundle of `mib` MiB pushed to the controller (each test its own, so none depends on another's cache). */
  async function bundle(mib: number): Promise<MemBundle> {
    const b = memBundle('edge', `1.0.${version++}`, { 'bin/edgecore': randomFile(mib) }, key.privatePem);
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    return b;
  }

  const relayCache = () => relay.loop.work.relay.cacheForTests!;

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
    relay = await enroll(c, 'gw-1', { site: 'gw' });
    for (let i = 1; i <= 3; i++) site.push(await enroll(c, `edge-${i}`, { site: 'plant-7' }, i === 1 ? { bandwidthBytesPerSec: 4 * 1024 * 1024 } : {}));
    await waitFor(() => [relay, ...site].every((a) => a.loop.state === 'connected'), 10_000, 'connected');
    const r = await admin.call(admin.client.enableRelay, { host: 'gw-1', serves: 'site=plant-7', cacheBytes: 256 * 1024 * 1024, listen: '127.0.0.1:0', advertise: '', registryListen: '' });
    assert.deepEqual(r.hostsServed, ['edge-1', 'edge-2', 'edge-3']);
    await waitFor(() => site.every((a) => a.loop.work.relays.length === 1 && a.loop.work.relays[0]!.address !== ''), 10_000, 'hosts told their relay');
    assert.equal(site[0]!.loop.work.relays[0]!.address, relay.loop.work.relay.address);
  });
  after(async () => { admin?.close(); await cleanup(c, [relay, ...site]); });

  it('serves several agents with one upstream fetch per chunk', async () => {
    const b = await bundle(6);
    const before = await controllerChunks(c);
    const up = relayCache().stats().bytesFromUpstream;
    const results = await Promise.all(site.slice(1).map((a) => stage(a, b)));
    for (const p of results) assert.equal(p.bytesFetched, uniqueBytes(b), 'each agent fetched every chunk once');
    assert.equal(relayCache().stats().bytesFromUpstream - up, uniqueBytes(b), 'the relay fetched each chunk from upstream once');
    assert.equal(await controllerChunks(c) - before, b.chunks.size, 'the controller served each chunk once, to the relay');
    for (const a of site.slice(1)) {
      assert.deepEqual(readFileSync(join(a.loop.work.bundles.filesDir(bundleId(b.signed)), 'bin/edgecore')), b.files.get('bin/edgecore'));
    }
    // `ferry relays ls` shows the relay's report.
    await waitFor(async () => ((await admin.call(admin.client.listRelays, {})).relays[0]?.status?.bytesServed ?? 0) >= 2 * uniqueBytes(b), 5_000, 'relay report');
    const [info] = (await admin.call(admin.client.listRelays, {})).relays;
    assert.equal(info!.hostname, 'gw-1');
    assert.equal(info!.connected, true);
    assert.ok(info!.status!.cacheUsedBytes >= uniqueBytes(b));
  });

  it('a server that is not the assigned relay (the controller\'s own certificate) is refused by the agent, which falls back', async () => {
    const b = await bundle(2);
    const a3 = site[2]!;
    const saved = a3.loop.work.relays;
    a3.loop.work.relays = [{ agentId: relay.id, address: c.address, registryAddress: '' }];
    const before = await controllerChunks(c);
    try {
      const p = await stage(a3, b);
      assert.equal(p.bytesFetched, uniqueBytes(b));
    } finally {
      a3.loop.work.relays = saved;
    }
    assert.match(a3.loop.work.relayHealth.fallbacks.at(-1)!.reason, /expected relay .* with role relay/);
    assert.equal(await controllerChunks(c) - before, b.chunks.size, 'everything came from the controller');
    a3.loop.work.relayHealth['downUntil'].clear(); // the real relay is not to blame
  });

  it('a chunk gone bad in the relay cache: the agent refuses it, fetches it elsewhere, and the relay drops it', async () => {
    const b = await bundle(3);
    const [, a2, a3] = site;
    await stage(a2!, b); // fills the relay cache (and the relay hashes each chunk as it serves it)
    const [digest] = [...b.chunks.keys()];
    const path = relayCache().store.pathOf(digest!);
    const good = readFileSync(path);
    writeFileSync(path, Buffer.alloc(good.length, 0x5a)); // same size: only hashing finds it
    // Staged as the controller asks for it, so its final report reaches the controller as it would.
    const reports: BundleProgress[] = [];
    const onProgress = c.ctx.prefetch.onProgress.bind(c.ctx.prefetch);
    c.ctx.prefetch.onProgress = async (agentId, pr) => { if (agentId === a3!.id) reports.push(pr); return onProgress(agentId, pr); };
    try {
      a3!.loop.work.handle({ msg: { $case: 'bundleStage', value: { bundleId: bundleId(b.signed), signed: b.signed } } });
      await waitFor(() => reports.some((r) => r.state === BundleState.BUNDLE_STATE_READY), 10_000, 'staged');
    } finally {
      c.ctx.prefetch.onProgress = onProgress;
    }
    const done = reports.find((r) => r.state === BundleState.BUNDLE_STATE_READY)!;
    assert.equal(done.bytesFetched, uniqueBytes(b));
    assert.equal(done.relayFallbacks.length, 1, 'the controller hears of the fallback');
    assert.match(done.relayFallbacks[0]!, new RegExp(`^${relay.id}: .*CHUNK_DIGEST_MISMATCH`));
    assert.deepEqual(readFileSync(join(a3!.loop.work.bundles.filesDir(bundleId(b.signed)), 'bin/edgecore')), b.files.get('bin/edgecore'));
    assert.match(a3!.loop.work.relayHealth.fallbacks.at(-1)!.reason, /CHUNK_DIGEST_MISMATCH/);
    await waitFor(() => !existsSync(path), 5_000, 'the relay drops the bad chunk');
    assert.ok(relayCache().stats().droppedCorrupt >= 1);
  });

  it('a relay killed mid-transfer: the agent finishes from the controller without refetching; restarted, its cache is still there', async () => {
    const b = await bundle(16);
    const a1 = site[0]!; // capped at 4 MiB/s: the stage takes a few seconds
    let killed: Promise<void> | undefined;
    const p = await stage(a1, b, (pr) => {
      if (!killed && pr.bytesFetched > 0) killed = relay.loop.stop(500);
    });
    await killed;
    assert.ok(killed, 'the relay was stopped while the agent was fetching');
    assert.equal(p.bytesFetched, uniqueBytes(b), 'no verified chunk was fetched twice');
    assert.match(a1.loop.work.relayHealth.fallbacks.at(-1)!.reason, /UNAVAILABLE|CANCELLED|ended the call|stalled/);
    assert.deepEqual(readFileSync(join(a1.loop.work.bundles.filesDir(bundleId(b.signed)), 'bin/edgecore')), b.files.get('bin/edgecore'));

    // Restarted with the same state: the controller gives it its role back, and the cache is read from disk.
    restart(relay);
    await waitFor(() => relay.loop.work.relay.address !== undefined, 10_000, 'relay serving again');
    const cached = relayCache().stats();
    assert.ok(cached.chunks > 0 && cached.bytesFromUpstream === 0, `cache survived: ${JSON.stringify(cached)}`);
    // A host that does not yet hold the bundle gets it from the warm cache: nothing more from upstream.
    const a2 = site[1]!;
    await waitFor(() => a2.loop.work.relays[0]?.address === relay.loop.work.relay.address, 10_000, 'new relay address pushed');
    const fromCache = new Set([...b.chunks.keys()].filter((d) => existsSync(relayCache().store.pathOf(d))));
    const q = await stage(a2, b);
    assert.equal(q.bytesFetched, uniqueBytes(b));
    const fetchedUp = relayCache().stats().bytesFromUpstream;
    const missing = [...b.chunks].filter(([d]) => !fromCache.has(d)).reduce((n, [, data]) => n + data.length, 0);
    assert.equal(fetchedUp, missing, 'only chunks the cache did not hold came from upstream');
    assert.ok(fromCache.size > 0, 'some chunks were cached before the relay was killed');
  });
});

describe('site relays: operators turn them off, revoke them, and mistype', function () {
  this.timeout(60_000);
  let c: Controller;
  let admin: Admin;
  const agents: TestAgent[] = [];

  before(async () => {
    c = await startController();
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    agents.push(await enroll(c, 'gw-1', { site: 'gw' }), await enroll(c, 'edge-1', { site: 'plant-7' }), await enroll(c, 'edge-2', { site: 'plant-7' }));
    await waitFor(() => agents.every((a) => a.loop.state === 'connected'), 10_000, 'connected');
  });
  after(async () => { admin?.close(); await cleanup(c, agents); });

  const enable = () => admin.call(admin.client.enableRelay, { host: 'gw-1', serves: 'site=plant-7', cacheBytes: 0, listen: '127.0.0.1:0', advertise: '', registryListen: '' });
  const assigned = (a: TestAgent) => a.loop.work.relays.length > 0;

  it('disabled: hosts stop using it and it stops serving; audited with who did it', async () => {
    const [gw, e1, e2] = agents;
    await enable();
    await waitFor(() => assigned(e1!) && assigned(e2!), 10_000, 'assigned');
    await admin.call(admin.client.disableRelay, { host: 'gw-1' });
    await waitFor(() => !assigned(e1!) && !assigned(e2!) && gw!.loop.work.relay.address === undefined, 10_000, 'unassigned');
    const audit = await c.ctx.audit.list(10);
    assert.deepEqual(audit.filter((e) => e.action.startsWith('relay.')).map((e) => [e.action, e.actor, e.subject]),
      [['relay.disable', 'local', gw!.id], ['relay.enable', 'local', gw!.id]]);
  });

  it('revoked: hosts stop using it and it stops serving; a revoked agent is refused by relays', async () => {
    const [gw, e1, e2] = agents;
    await enable();
    await waitFor(() => assigned(e1!) && gw!.loop.work.relay.address !== undefined, 10_000, 'assigned');
    await admin.call(admin.client.revokeAgent, { id: e2!.id });
    await waitFor(() => gw!.loop.work.relay['revoked'].has(e2!.id), 5_000, 'the relay learns of the revocation');
    // A malformed request is refused as such, before anything is fetched upstream.
    const e1l = e1!.state.load();
    const asE1 = GrpcChunkSource.connect(gw!.loop.work.relay.address!, relayCreds(e1l.caPem, e1l, gw!.id));
    try {
      await assert.rejects(async () => { for await (const _ of asE1.fetch(['../../etc/passwd'], new AbortController().signal)) { /* nothing */ } },
        (e: FerryError) => e.code === ErrorCode.InvalidArgument && /is not a chunk digest/.test(e.message));
    } finally {
      asE1.close();
    }
    // e2's certificate is still within its life; the relay refuses it by id.
    const loaded = e2!.state.load();
    const direct = GrpcChunkSource.connect(gw!.loop.work.relay.address!, relayCreds(loaded.caPem, loaded, gw!.id));
    try {
      await assert.rejects(async () => { for await (const _ of direct.fetch(['0'.repeat(64)], new AbortController().signal)) { /* nothing */ } },
        (e: FerryError) => e.code === ErrorCode.AgentRevoked && /revoked; this relay refuses it/.test(e.message));
    } finally {
      direct.close();
    }
    await admin.call(admin.client.revokeAgent, { id: gw!.id });
    await waitFor(() => !assigned(e1!) && gw!.loop.work.relay.address === undefined, 10_000, 'revoked relay dropped and stopped');
  });

  it('the CLI: --json records as documented; unknown host, bad selector and bad size refused with exit 2', async () => {
    const ferry = (...a: string[]) => run([process.execPath, join(repoRoot(), 'bin', 'ferry.js'), '--admin-socket', c.config.adminSocket, ...a]);
    const docs = documentedKinds();
    const enabled = await ferry('relay', 'enable', 'edge-1', '--serves', 'site=plant-7', '--cache-size', '1G', '--listen', '127.0.0.1:0', '--json');
    assert.equal(enabled.code, Exit.Ok, enabled.stderr);
    assertConforms(docs, 'relay', jsonLines(enabled.stdout));
    assert.equal(jsonLines(enabled.stdout)[0]!['cacheBytes'], 1024 ** 3);
    await waitFor(async () => (await admin.call(admin.client.listRelays, {})).relays.some((r) => r.status?.address), 10_000, 'relay reported');
    const listed = await ferry('relays', 'ls', '--json');
    assert.equal(listed.code, Exit.Ok, listed.stderr);
    assertConforms(docs, 'relay', jsonLines(listed.stdout));
    const table = await ferry('relays', 'ls');
    assert.match(table.stdout, /^RELAY\s+SERVES\s+HOSTS/m);
    assert.match(table.stdout, /edge-1\s+site=plant-7/);
    const disabled = await ferry('relay', 'disable', 'edge-1', '--json');
    assert.equal(disabled.code, Exit.Ok, disabled.stderr);
    assertConforms(docs, 'relay', jsonLines(disabled.stdout));

    const refusals: Array<[string[], RegExp]> = [
      [['relay', 'enable', 'no-such-host', '--serves', 'site=plant-7'], /relay host "no-such-host" is not an enrolled agent/],
      [['relay', 'enable', 'edge-1', '--serves', 'site in (a'], /--serves "site in \(a": invalid selector at column/],
      [['relay', 'enable', 'edge-1'], /a relay needs --serves/],
      [['relay', 'enable', 'edge-1', '--serves', 'site=plant-7', '--cache-size', '12X'], /--cache-size "12X" is not a size/],
      [['relay', 'enable', 'edge-1', '--serves', 'site=plant-7', '--cache-size', '1M'], /below the minimum of 64 MiB/],
      [['relay', 'enable', 'edge-1', '--serves', 'site=plant-7', '--listen', 'nowhere'], /--listen "nowhere" is not HOST:PORT/],
      [['relay', 'disable', 'no-such-host'], /relay host "no-such-host" is not an enrolled agent/],
    ];
    for (const [argv, message] of refusals) {
      const r = await ferry(...argv);
      assert.equal(r.code, Exit.Usage, `${argv.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message, argv.join(' '));
    }
    // Nothing of the refusals reached the store.
    assert.deepEqual((await admin.call(admin.client.listRelays, {})).relays.filter((r) => r.hostname === 'edge-1'), []);
  });
});
