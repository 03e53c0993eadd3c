/**
 * Site-relays benchmark (`node build/scripts/bench/run.js --suite relays [--quick]`;
 * not a test: it asserts nothing and writes bench-results/relays.md + .json).
 *
 * One bundle to 32 real agents (`ferry-agent run`, one process each) in 4
 * simulated sites of 8 (test/support/sites.ts: a network namespace per site
 * behind a shaped uplink), the controller and nginx in the root namespace:
 *
 *   floor  one curl of the bundle across one site's uplink: what one copy costs on the wire
 *   (a)    the seed-002 way: nginx serving the files, every host fetching them with curl
 *   (b)    Ferry without relays: every agent stages the bundle from the controller (prefetch)
 *   (c)    Ferry with a relay per site: one agent of each site made its relay
 *          (`ferry relay enable HOST --serves site=NAME`), a second bundle
 *          of the same size and no shared chunk prefetched to all 32
 *
 * Per round and site: bytes down the site's uplink (interface counters,
 * headers and retransmissions included) ÷ bundle size, payload the server
 * sent to that site's hosts, wall time, and the bytes the controller served
 * for the site (with relays: what the relay fetched upstream plus anything
 * an agent fell back to the controller for; cross-checked against the
 * controller's own /metrics counter).
 *
 * Size: 1 GiB (full), 64 MiB with --quick; BENCH_RELAYS_MIB=N or --bundle-mib N
 * picks another. --rounds floor,nginx,ferry,relay (default all) runs fewer. Link: --rate-mbit (200), --loss-pct (0.5), --rtt-ms (40 where
 * the kernel has netem, else 0 and the report says so). docs/bench-sites.md
 * says why these. Needs root (namespaces); without, it prints why and exits 0.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildManifest } from '../../common/src/bundle/builder.js';
import { generateSigningKey, signManifest } from '../../common/src/bundle/manifest.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { dirReader, pushBundle } from '../../controller/src/cli/bundle-push.js';
import { Sites, type LinkShape, type Site } from '../../test/support/sites.js';
import { prefetch } from './bundles.js';
import { ferry, freeDiskBytes, freePort, GiB, Janitor, MiB, progress, REPO, runBounded, runSuite } from './kit.js';
import { AgentProc, ControllerProc, enrollAgents, waitConnected, type Enrolled } from './ferry-procs.js';
import { fmtMiB, fmtMs, Report } from './report.js';
import { sysDelta, sysSnap, type SysDelta } from './sys-counters.js';
import { sleep } from './lib.js';
import { Nginx, nginxInstalled } from './nginx.js';
import { listFiles, packageSpecOfSize, writePackage } from './pkg.js';

const SUITE = 'relays';
const log = (m: string) => progress(SUITE, m);
/** Issue 12's goal for (c): bytes over each site's uplink ÷ bundle size. */
const GOAL_UPLINK_RATIO = 1.05;

/** The simulated fleet: where every agent is. */
export interface SiteLayout {
  sites: Sites;
  /** Agents of each site, by site name. */
  agents: Map<string, Array<Enrolled & { proc: AgentProc; logPath: string }>>;
  link: LinkShape;
}

/** One round's outcome per site. */
interface SiteResult {
  site: string; downBytes: number; upBytes: number; servedBytes: number; wallMs: number; ok: number; hosts: number;
  /** Payload the controller (or nginx) sent for this site's hosts. */
  serverBytes?: number;
  /** Round (c): the site relay's counters over the round. */
  relay?: { agentId: string; fromUpstream: number; served: number; hits: number; misses: number; upstreamBytesPerSec: number };
}
interface RoundResult {
  label: string; wallMs: number; sites: SiteResult[]; sys: SysDelta; errors: string[];
  /** Chunk bytes the controller sent in the round (its /metrics counter). */
  controllerBytes?: number;
  /** Size of the bundle the round moved. */
  bundleBytes?: number;
}

/** Counters of every site now. */
const snapshot = (sites: Sites) => new Map(sites.sites.map((s) => [s.name, s.bytes()]));

/** bash -c script for one host: every file over one kept-alive connection, each size printed; retries like an operator's script would. */
function curlScript(urls: string[]): string {
  const q = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  return `curl -sSk --fail --retry 5 --retry-delay 1 -w '%{size_download}\\n' ${urls.flatMap((u) => ['-o', '/dev/null', u]).map(q).join(' ')}`;
}

async function curlRound(j: Janitor, label: string, sites: Sites, hostsPerSite: number, urls: string[], timeoutMs: number, onlySite?: Site): Promise<RoundResult> {
  const targets = onlySite ? [onlySite] : sites.sites;
  const before = snapshot(sites);
  const s0 = sysSnap();
  const t0 = performance.now();
  const perSite = await Promise.all(targets.map(async (site) => {
    const hosts = await Promise.all(Array.from({ length: hostsPerSite }, async () => {
      const r = await runBounded(j, 'ip', ['netns', 'exec', site.netns, 'bash', '-c', curlScript(urls)], timeoutMs);
      const bytes = r.stdout.split('\n').reduce((s, l) => s + (Number(l) || 0), 0);
      return { ok: r.code === 0, bytes, ms: performance.now() - t0, err: r.code === 0 ? '' : `${site.name}: curl exit ${r.code}: ${r.stderr.slice(-200)}` };
    }));
    return { site, hosts };
  }));
  const wallMs = performance.now() - t0;
  const sys = sysDelta(s0, sysSnap());
  const after = snapshot(sites);
  return {
    label, wallMs, sys, errors: perSite.flatMap((p) => p.hosts.filter((h) => !h.ok).map((h) => h.err)),
    sites: perSite.map(({ site, hosts }) => ({
      site: site.name, downBytes: after.get(site.name)!.down - before.get(site.name)!.down, upBytes: after.get(site.name)!.up - before.get(site.name)!.up,
      servedBytes: hosts.reduce((s, h) => s + h.bytes, 0), wallMs: Math.max(...hosts.map((h) => h.ms)), ok: hosts.filter((h) => h.ok).length, hosts: hosts.length,
    })),
  };
}

async function ferryRound(admin: Admin, layout: SiteLayout, name: string, version: string, timeoutMs: number, label = 'ferry'): Promise<RoundResult> {
  const before = snapshot(layout.sites);
  const s0 = sysSnap();
  const r = await prefetch(admin, name, version, '', timeoutMs);
  const sys = sysDelta(s0, sysSnap());
  const after = snapshot(layout.sites);
  const errors: string[] = [];
  const sites = layout.sites.sites.map((site) => {
    const ids = layout.agents.get(site.name)!.map((a) => a.agentId);
    const got = ids.map((id) => r.perAgent.get(id));
    for (const [k, g] of got.entries()) if (g?.state !== 'ready') errors.push(`${site.name}/${ids[k]}: ${g ? `${g.state} ${g.error}` : 'no answer'}`);
    return {
      site: site.name, downBytes: after.get(site.name)!.down - before.get(site.name)!.down, upBytes: after.get(site.name)!.up - before.get(site.name)!.up,
      servedBytes: got.reduce((s, g) => s + (g?.bytesFetched ?? 0), 0), wallMs: Math.max(...got.map((g) => g?.readyMs ?? Number.NaN)),
      ok: got.filter((g) => g?.state === 'ready').length, hosts: ids.length,
    };
  });
  return { label, wallMs: r.wallMs, sites, sys, errors };
}

/** Bytes of chunk messages the controller has sent so far (its /metrics counter ferry_chunk_bytes_served_total). */
async function controllerChunkBytes(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const m = /^ferry_chunk_bytes_served_total\s+(\S+)$/m.exec(text);
  if (!m) throw new Error(`${metricsUrl} has no ferry_chunk_bytes_served_total`);
  return Number(m[1]);
}

type RelayCounters = { fromUpstream: number; served: number; hits: number; misses: number; upstreamBytesPerSec: number; address: string; atMs: number };

async function relayCounters(admin: Admin): Promise<Map<string, RelayCounters>> {
  const { relays } = await admin.call(admin.client.listRelays, {});
  return new Map(relays.map((r) => [r.agentId, {
    fromUpstream: r.status?.bytesFromUpstream ?? 0, served: r.status?.bytesServed ?? 0, hits: r.status?.hits ?? 0, misses: r.status?.misses ?? 0,
    upstreamBytesPerSec: r.status?.upstreamBytesPerSec ?? 0, address: r.status?.address ?? '', atMs: r.statusAtMs,
  }]));
}

/** Polls until `ok` holds, every 500 ms, for at most `ms`. */
async function until(what: string, ms: number, ok: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${Math.round(ms / 1000)} s`);
    await sleep(500);
  }
}

/**
 * Row (c): the first agent of each site becomes the site's relay, the
 * operator's way (`ferry relay enable HOST --serves site=NAME`); once every
 * relay serves and every host of its site logged the assignment, bundle
 * `name:version` (no chunk in common with what the hosts hold) is
 * prefetched to all 32 agents exactly as in (b).
 */
async function relayRound(j: Janitor, o: { dataDir: string; admin: Admin; layout: SiteLayout; name: string; version: string; cacheBytes: number; metricsUrl: string; timeoutMs: number }): Promise<RoundResult> {
  const { admin, layout } = o;
  const relayOf = new Map<string, Enrolled & { proc: AgentProc; logPath: string }>();
  for (const site of layout.sites.sites) {
    const r = layout.agents.get(site.name)![0]!;
    relayOf.set(site.name, r);
    await ferry(j, o.dataDir, ['relay', 'enable', r.agentId, '--serves', `site=${site.name}`, '--cache-size', String(o.cacheBytes), '--listen', '0.0.0.0:0', '--json']);
  }
  let counters = new Map<string, RelayCounters>();
  await until('every relay reports where it serves', 120_000, async () => {
    counters = await relayCounters(admin);
    return [...relayOf.values()].every((r) => counters.get(r.agentId)?.address);
  });
  // Each host logs the assignment it got; the prefetch is sent on the same session after it.
  await until('every host learned its site relay', 60_000, () => layout.sites.sites.every((site) => {
    const address = counters.get(relayOf.get(site.name)!.agentId)!.address;
    return layout.agents.get(site.name)!.slice(1).every((a) => readFileSync(a.logPath, 'utf8').split('\n').some((l) => l.includes('relay assignment') && l.includes(address)));
  }));
  log(`relays serving: ${layout.sites.sites.map((s) => `${s.name} ${counters.get(relayOf.get(s.name)!.agentId)!.address}`).join(', ')}`);
  const before = await relayCounters(admin);
  const ctl0 = await controllerChunkBytes(o.metricsUrl);
  const r = await ferryRound(admin, layout, o.name, o.version, o.timeoutMs, 'relay');
  // Relays report changed counters every 5 s: wait for a report made after the round, then until two in a row agree.
  const doneAt = Date.now();
  let after = new Map<string, RelayCounters>();
  let prev = '';
  await until('the relays report their counters after the round', 60_000, async () => {
    after = await relayCounters(admin);
    const fresh = [...relayOf.values()].every((x) => (after.get(x.agentId)?.atMs ?? 0) > doneAt);
    const text = JSON.stringify([...after.entries()].map(([k, v]) => [k, v.fromUpstream, v.served]));
    const same = fresh && text === prev;
    prev = fresh ? text : '';
    if (fresh && !same) await sleep(5_500);
    return same;
  });
  r.controllerBytes = (await controllerChunkBytes(o.metricsUrl)) - ctl0;
  for (const s of r.sites) {
    const id = relayOf.get(s.site)!.agentId;
    const a = after.get(id)!;
    const b = before.get(id)!;
    s.relay = { agentId: id, fromUpstream: a.fromUpstream - b.fromUpstream, served: a.served - b.served, hits: a.hits - b.hits, misses: a.misses - b.misses, upstreamBytesPerSec: a.upstreamBytesPerSec };
    // What the hosts got that the relay did not serve came from the controller (a fallback).
    s.serverBytes = s.relay.fromUpstream + Math.max(0, s.servedBytes - s.relay.served);
  }
  return r;
}

/** Stops every agent, removes the bundles it staged (disk: the next round stages another bundle of the same size), starts it again. */
async function freeAgentDisks(j: Janitor, admin: Admin, layout: SiteLayout): Promise<void> {
  const all = [...layout.sites.sites].flatMap((site) => layout.agents.get(site.name)!.map((a) => ({ site, a })));
  await Promise.all(all.map(({ a }) => a.proc.stop()));
  for (const { site, a } of all) {
    rmSync(join(a.stateDir, 'bundles'), { recursive: true, force: true });
    a.proc = AgentProc.start(j, a, a.logPath, [], process.env, ['ip', 'netns', 'exec', site.netns]);
  }
  await waitConnected(admin, all.map(({ a }) => a.agentId), 120_000);
}

export async function main(argv: string[]): Promise<number> {
  const { values: opt } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      'bundle-mib': { type: 'string' },
      'rate-mbit': { type: 'string', default: '200' },
      'loss-pct': { type: 'string', default: '0.5' },
      'rtt-ms': { type: 'string' },
      out: { type: 'string', default: join(REPO, 'bench-results') },
      keep: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'timeout-min': { type: 'string' },
      rounds: { type: 'string', default: 'floor,nginx,ferry,relay' },
    },
    strict: true,
  });
  const why = Sites.unavailable();
  if (why) {
    log(`not run: ${why}`);
    return 0;
  }
  const mib = Number(opt['bundle-mib'] ?? process.env['BENCH_RELAYS_MIB'] ?? (opt.quick ? 64 : 1024));
  const link: LinkShape = { rateMbit: Number(opt['rate-mbit']), lossPct: Number(opt['loss-pct']), rttMs: Number(opt['rtt-ms'] ?? (Sites.canDelay() ? 40 : 0)) };
  if (!(mib >= 4 && mib <= 8192)) {
    process.stderr.write('--bundle-mib / BENCH_RELAYS_MIB: a size in MiB between 4 and 8192\n');
    return 2;
  }
  if (!(link.rateMbit > 0) || !((link.lossPct ?? 0) >= 0) || !((link.rttMs ?? 0) >= 0)) {
    process.stderr.write('--rate-mbit > 0, --loss-pct >= 0, --rtt-ms >= 0\n');
    return 2;
  }
  if ((link.rttMs ?? 0) > 0 && !Sites.canDelay()) {
    process.stderr.write(`--rtt-ms ${link.rttMs}: this kernel has no netem qdisc, so no delay can be shaped; pass --rtt-ms 0\n`);
    return 2;
  }
  const rounds = new Set(opt.rounds!.split(',').map((r) => r.trim()).filter(Boolean));
  const unknown = [...rounds].filter((r) => !['floor', 'nginx', 'ferry', 'relay'].includes(r));
  if (unknown.length) {
    process.stderr.write(`--rounds: unknown round(s) ${unknown.join(', ')}; pick from floor,nginx,ferry,relay\n`);
    return 2;
  }
  const OUT = resolve(opt.out!);
  const LOGS = join(OUT, 'relays-logs');
  rmSync(LOGS, { recursive: true, force: true });
  mkdirSync(LOGS, { recursive: true });
  const j = new Janitor(SUITE, Boolean(opt.keep));
  // Expected: 8 copies per site at the link rate for (a) and (b) each; 3× that and 10 min of slack.
  const perRoundS = (8 * mib * MiB * 8) / (link.rateMbit * 1e6);
  return runSuite(j, Number(opt['timeout-min'] ?? Math.ceil((perRoundS * 3 * 3) / 60 + 10)), () => suite(j, { mib, link, OUT, LOGS, quick: Boolean(opt.quick), roundTimeoutMs: (perRoundS * 3 + 120) * 1000, rounds }));
}

async function suite(j: Janitor, o: { mib: number; link: LinkShape; OUT: string; LOGS: string; quick: boolean; roundTimeoutMs: number; rounds: ReadonlySet<string> }): Promise<number> {
  const { link, LOGS } = o;
  const SITES = 4;
  const PER_SITE = 8;
  const tmp = j.tempDir('ferry-bench-relays-');
  // 32 staged copies (the agents' bundles are removed between (b) and (c)), 4 relay caches, two packages and the controller's copies.
  const need = o.mib * MiB * (SITES * PER_SITE + SITES + 6) + 4 * GiB;
  if (freeDiskBytes(tmp) < need) throw new Error(`needs ${(need / GiB).toFixed(1)} GiB free under ${tmp} (32 staged copies, 4 relay caches, 2 packages, the controller store), has ${(freeDiskBytes(tmp) / GiB).toFixed(1)} GiB; try a smaller BENCH_RELAYS_MIB`);
  const sites = Sites.create(Array.from({ length: SITES }, (_, i) => ({ name: `site-${i + 1}`, link })));
  j.onCleanup(() => sites.teardown());
  const linkText = `${link.rateMbit} Mbit/s each way, ${link.lossPct}% loss each way, ${link.rttMs ? `${link.rttMs} ms RTT` : 'no added delay (this kernel has no netem)'}`;
  log(`${SITES} sites × ${PER_SITE} hosts behind ${linkText}; hub ${sites.hub}`);
  const rep = new Report(SUITE, `Ferry site-relays benchmark — ${o.quick ? 'quick' : 'full'} run`, { mode: `${o.mib} MiB bundle`, link, sites: SITES, perSite: PER_SITE });

  // ---- the package, the controller, the bundle ----
  const pkg = join(tmp, 'pkg');
  const bytes = writePackage(pkg, packageSpecOfSize(o.mib * MiB));
  const files = listFiles(pkg);
  log(`package: ${fmtMiB(bytes)} in ${files.length} files`);
  // (c)'s bundle: the same shape, other bytes (the hosts hold (b)'s chunks).
  const pkg2 = join(tmp, 'pkg2');
  const bytes2 = writePackage(pkg2, packageSpecOfSize(o.mib * MiB), 'relay-round');
  const dataDir = join(tmp, 'controller');
  const httpPort = await freePort();
  const metricsUrl = `http://127.0.0.1:${httpPort}/metrics`;
  const ctl = await ControllerProc.start(j, dataDir, `${sites.hub}:0`, join(LOGS, 'controller.log'), [], ['--http-addr', `127.0.0.1:${httpPort}`]);
  const admin = Admin.connect({ data: dataDir });
  j.onCleanup(() => admin.close());
  log(`controller pid ${ctl.pid} on ${ctl.address}`);
  const key = generateSigningKey();
  const pub = join(tmp, 'op.pub');
  writeFileSync(pub, key.publicPem);
  await ferry(j, dataDir, ['key', 'add', pub, '--name', 'bench', '--json']);
  const manifest = await buildManifest(pkg, { name: 'relay-bench', version: '1.0' });
  await pushBundle(admin, signManifest(manifest, key.privatePem), dirReader(pkg, manifest), { progress: false });
  const manifest2 = await buildManifest(pkg2, { name: 'relay-bench-2', version: '1.0' });
  await pushBundle(admin, signManifest(manifest2, key.privatePem), dirReader(pkg2, manifest2), { progress: false });

  // ---- floor and (a): nginx → curl ----
  const rounds: RoundResult[] = [];
  if (!o.rounds.has('floor') && !o.rounds.has('nginx')) {
    rep.notes.push(`Rows floor and (a) were not run in this run (--rounds ${[...o.rounds].join(',')}).`);
  } else if (nginxInstalled()) {
    const ngx = await Nginx.start(j, join(tmp, 'nginx'), pkg, 2, sites.hub);
    const urls = files.map((f) => `https://${sites.hub}:${ngx.port}/${f.split('/').map(encodeURIComponent).join('/')}`);
    if (o.rounds.has('floor')) {
      log('floor: one curl of the bundle across site-1\'s uplink');
      rounds.push(await curlRound(j, 'floor', sites, 1, urls, o.roundTimeoutMs, sites.site('site-1')));
    }
    if (o.rounds.has('nginx')) {
      log(`(a) nginx → curl on ${SITES * PER_SITE} hosts`);
      const cpu0 = ngx.cpuMs();
      const a = await curlRound(j, 'nginx', sites, PER_SITE, urls, o.roundTimeoutMs);
      rep.raw['nginxCpuMs'] = ngx.cpuMs() - cpu0;
      rounds.push(a);
    } else rep.notes.push(`Row (a) was not run in this run (--rounds ${[...o.rounds].join(',')}).`);
    await ngx.stop();
  } else {
    rep.notes.push('nginx is not installed (`apt-get install nginx`): rows floor and (a) were not run');
  }

  // ---- the agents, enrolled and running inside their sites ----
  const layout: SiteLayout = { sites, agents: new Map(), link };
  for (const site of sites.sites) {
    const { joinString } = await admin.call(admin.client.createToken, { ttlMs: 3_600_000, maxUses: PER_SITE, labels: [{ key: 'site', value: site.name }] });
    const dirs = Array.from({ length: PER_SITE }, (_, i) => join(tmp, 'agents', `${site.name}-${i + 1}`));
    const enrolled = await enrollAgents(j, joinString, dirs, 4, () => ['ip', 'netns', 'exec', site.netns]);
    layout.agents.set(site.name, enrolled.map((e, i) => {
      const logPath = join(LOGS, `agent-${site.name}-${i + 1}.log`);
      return { ...e, logPath, proc: AgentProc.start(j, e, logPath, [], process.env, ['ip', 'netns', 'exec', site.netns]) };
    }));
  }
  const ids = [...layout.agents.values()].flat().map((a) => a.agentId);
  await waitConnected(admin, ids, 120_000);
  log(`${ids.length} agents connected from inside their sites`);

  // ---- (b) Ferry without relays ----
  if (o.rounds.has('ferry')) {
    log('(b) Ferry without relays: prefetch to every agent');
    const ctlCpu0 = ctl.cpuMs();
    const ctlBytes0 = await controllerChunkBytes(metricsUrl);
    const b = await ferryRound(admin, layout, 'relay-bench', '1.0', o.roundTimeoutMs);
    b.controllerBytes = (await controllerChunkBytes(metricsUrl)) - ctlBytes0;
    for (const s of b.sites) s.serverBytes = s.servedBytes;
    rep.raw['controllerCpuMs'] = ctl.cpuMs() - ctlCpu0;
    rounds.push(b);
  }

  // ---- (c) Ferry with a relay per site ----
  if (o.rounds.has('relay')) {
    log('(c) Ferry with a relay per site: removing (b)\'s staged bundles, enabling one relay per site');
    await freeAgentDisks(j, admin, layout);
    const ctlCpu1 = ctl.cpuMs();
    const c = await relayRound(j, { dataDir, admin, layout, name: 'relay-bench-2', version: '1.0', cacheBytes: Math.max(64 * MiB, 2 * bytes2), metricsUrl, timeoutMs: o.roundTimeoutMs });
    rep.raw['controllerCpuMsRelays'] = ctl.cpuMs() - ctlCpu1;
    c.bundleBytes = bytes2;
    rounds.push(c);
  }

  // ---- the report ----
  rep.raw['rounds'] = rounds;
  rep.raw['bundleBytes'] = bytes;
  const ratio = (x: number) => (x / bytes).toFixed(2);
  const byLabel = new Map(rounds.map((r) => [r.label, r]));
  const floor = byLabel.get('floor');
  if (floor) {
    const s = floor.sites[0]!;
    rep.row({ metric: `Floor: one host in site-1 fetches the ${fmtMiB(bytes)} bundle once with curl (one copy across the uplink)`, measured: `${fmtMiB(s.downBytes)} down in ${fmtMs(s.wallMs)}`, ratio: `${ratio(s.downBytes)} × bundle` });
  }
  const describe: Array<[string, string]> = [
    ['nginx', '(a) seed-002 way: nginx in the root namespace, each of 32 hosts fetches every file with curl (one kept-alive HTTPS connection, --retry 5)'],
    ['ferry', '(b) Ferry without relays: `bundle prefetch` to all 32 agents, each stages the bundle from the controller'],
    ['relay', `(c) Ferry with one relay per site (goal ≤ ${GOAL_UPLINK_RATIO} × bundle per uplink)`],
  ];
  for (const [label, what] of describe) {
    const r = byLabel.get(label);
    if (!r) continue;
    const ok = r.sites.reduce((s, x) => s + x.ok, 0);
    const hosts = r.sites.reduce((s, x) => s + x.hosts, 0);
    const ratios = r.sites.map((s) => s.downBytes / (r.bundleBytes ?? bytes));
    const worst = Math.max(...ratios);
    const ctlText = r.controllerBytes === undefined ? '' : `; controller sent ${fmtMiB(r.controllerBytes)} (${(r.controllerBytes / (r.bundleBytes ?? bytes)).toFixed(2)} × bundle)`;
    const floorRatio = floor ? floor.sites[0]!.downBytes / bytes : undefined;
    const vsFloor = label === 'relay' && floorRatio ? ` (the floor, one copy by curl: ${floorRatio.toFixed(3)})` : '';
    rep.row({
      metric: what, goal: label === 'relay' ? `≤ ${GOAL_UPLINK_RATIO}` : '—',
      measured: `wall ${fmtMs(r.wallMs)}, ${ok}/${hosts} hosts done; uplink down per site ${r.sites.map((s) => fmtMiB(s.downBytes, 0)).join(' / ')}${ctlText}; machine CPU ${r.sys.busyPct.toFixed(0)}% busy`,
      ratio: `${ratios.map((x) => x.toFixed(label === 'relay' ? 3 : 2)).join(' / ')} × bundle${vsFloor}`,
      result: label === 'relay' ? (worst <= GOAL_UPLINK_RATIO ? 'PASS' : 'FAIL') : 'info', value: worst,
    });
    if (r.errors.length) rep.notes.push(`${r.label}: ${r.errors.length} host(s) failed: ${r.errors.slice(0, 5).join('; ')}`);
    if (label === 'relay') {
      // The payload: what the controller sent for each site (its relay's upstream plus any fallback), ÷ bundle.
      const payload = r.sites.map((x) => (x.serverBytes ?? Number.NaN) / (r.bundleBytes ?? bytes));
      rep.row({
        metric: '(c) payload the controller sent for each site ÷ bundle (one copy = 1.00; headers and retransmissions not counted)', goal: `≤ ${GOAL_UPLINK_RATIO}`,
        measured: r.sites.map((x) => fmtMiB(x.serverBytes ?? Number.NaN)).join(' / '), ratio: `${payload.map((x) => x.toFixed(3)).join(' / ')} × bundle`,
        result: Math.max(...payload) <= GOAL_UPLINK_RATIO ? 'PASS' : 'FAIL', value: Math.max(...payload),
      });
    }
  }
  const bC = byLabel.get('ferry');
  const cC = byLabel.get('relay');
  if (bC && cC) {
    rep.row({ metric: 'Wall time, the same size of bundle to all 32 hosts: (b) without relays → (c) with a relay per site', measured: `${fmtMs(bC.wallMs)} → ${fmtMs(cC.wallMs)}`, ratio: `${(bC.wallMs / cC.wallMs).toFixed(2)}× faster`, result: 'info' });
  }
  const sec = ['## Per site', '', `Bundle ${fmtMiB(bytes)} (${files.length} files; (c) moves a second bundle of ${fmtMiB(bytes2)} with no chunk in common). Uplink: ${linkText}. "Down" is the site uplink's WAN-side interface tx counter (Ethernet + IP + TCP headers and retransmissions included); "served" is the payload the site's hosts received (curl's size_download; Ferry: each agent's reported bytes fetched, from the relay or the controller); "server sent" is the payload the controller (nginx for (a)) sent for the site: with relays, what the site's relay fetched upstream plus what hosts got beyond what the relay served them (fallbacks); "link busy" is down ÷ (site wall × rate).`, '',
    '| Round | Site | Hosts ok | Down (uplink) | ÷ bundle | Up (uplink) | Served to the site | Server sent | Site wall | Link busy |', '|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rounds) {
    for (const s of r.sites) {
      const busy = (s.downBytes * 8) / ((s.wallMs / 1000) * link.rateMbit * 1e6);
      sec.push(`| ${r.label} | ${s.site} | ${s.ok}/${s.hosts} | ${fmtMiB(s.downBytes)} | ${(s.downBytes / (r.bundleBytes ?? bytes)).toFixed(2)} | ${fmtMiB(s.upBytes)} | ${fmtMiB(s.servedBytes)} | ${fmtMiB(s.serverBytes ?? s.servedBytes)} | ${fmtMs(s.wallMs)} | ${(busy * 100).toFixed(0)}% |`);
    }
  }
  sec.push('');
  if (cC) {
    sec.push('## The relays in (c)', '', 'From `ferry relays ls` before and after the round (each relay also stages the bundle for its own host through its cache). "Upstream" is what the relay fetched from the controller; "served" what it gave the site\'s hosts, itself included; hits and misses count chunk requests; "upstream speed" is the relay\'s last upstream fetch.', '',
      '| Site | Relay | Upstream | ÷ bundle | Served | Hit ratio | Upstream speed |', '|---|---|---|---|---|---|---|');
    for (const s of cC.sites) {
      const x = s.relay!;
      const asked = x.hits + x.misses;
      sec.push(`| ${s.site} | ${x.agentId} | ${fmtMiB(x.fromUpstream)} | ${(x.fromUpstream / bytes2).toFixed(2)} | ${fmtMiB(x.served)} | ${asked ? ((100 * x.hits) / asked).toFixed(0) + '%' : '-'} | ${(x.upstreamBytesPerSec / MiB).toFixed(1)} MiB/s |`);
    }
    const perSite = cC.sites.reduce((n, s) => n + (s.serverBytes ?? 0), 0);
    sec.push('', `The controller's own counter (ferry_chunk_bytes_served_total) moved ${fmtMiB(cC.controllerBytes ?? Number.NaN)} during (c); the per-site figures above add up to ${fmtMiB(perSite)}.`, '');
  }
  rep.sections.push(...sec);
  rep.notes.push(
    `Sites are network namespaces (test/support/sites.ts, docs/bench-sites.md): each site's 8 hosts are 8 processes in its namespace sharing its one uplink; the controller and nginx are in the root namespace behind a routing "WAN" namespace. Rate: htb on both ends of the uplink; loss: iptables statistic each way (as packets enter the WAN from the site, and as they arrive in the site); ${link.rttMs ? 'delay: netem' : 'no delay: this kernel has no netem qdisc'}.`,
    `Ferry's processes are real: the controller (\`ferry controller start\`) and ${SITES * PER_SITE} \`ferry-agent run\` processes, each enrolled with \`ferry-agent join\` from inside its site. curl writes to /dev/null: it moves the bytes and checks nothing (no digest, nothing on disk) where every agent verifies and writes each chunk, so (a) is the generous side of the comparison.`,
    'Everything shares this machine\'s 2 cores: when "machine CPU" is near 100% the round was CPU-bound rather than link-bound, and the wall times say more about this box than about the links.',
    `Controller CPU during (b): ${fmtMs((rep.raw['controllerCpuMs'] as number) ?? Number.NaN)}; during (c): ${fmtMs((rep.raw['controllerCpuMsRelays'] as number) ?? Number.NaN)}; nginx CPU during (a): ${fmtMs((rep.raw['nginxCpuMs'] as number) ?? Number.NaN)}.`,
    'The goal counts wire bytes (Ethernet, IP and TCP headers and retransmissions included): the floor row, one curl of one copy, itself measures about 1.05 × bundle, so a site at 1.05 moved exactly one copy and anything above is retransmissions under the 0.5% loss. "Server sent" and the relay table give the payload: one copy per site (1.00 ×) when no host fell back.',
    'Between (b) and (c) every agent is stopped, the bundle it staged in (b) is deleted (disk: 32 more copies of a 1 GiB bundle would not fit this machine) and it is started again; (c) then turns on one relay per site with `ferry relay enable HOST --serves site=NAME --listen 0.0.0.0:0` and waits until each relay serves and each host logged its assignment.',
  );
  const md = rep.write(o.OUT);
  process.stdout.write(md + '\n');
  log(`wrote ${join(o.OUT, 'relays.md')} and relays.json; logs in ${LOGS}`);
  return 0;
}
