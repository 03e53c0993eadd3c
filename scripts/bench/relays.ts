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
 *   (c)    Ferry with a relay per site: NOT YET — see relayRound() below
 *
 * Per round and site: bytes down the site's uplink (interface counters,
 * headers and retransmissions included) ÷ bundle size, payload the server
 * sent to that site's hosts, wall time.
 *
 * Size: 1 GiB (full), 64 MiB with --quick; BENCH_RELAYS_MIB=N or --bundle-mib N
 * picks another. Link: --rate-mbit (200), --loss-pct (0.5), --rtt-ms (40 where
 * the kernel has netem, else 0 and the report says so). docs/bench-sites.md
 * says why these. Needs root (namespaces); without, it prints why and exits 0.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildManifest } from '../../common/src/bundle/builder.js';
import { generateSigningKey, signManifest } from '../../common/src/bundle/manifest.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { dirReader, pushBundle } from '../../controller/src/cli/bundle-push.js';
import { Sites, type LinkShape, type Site } from '../../test/support/sites.js';
import { prefetch } from './bundles.js';
import {
  AgentProc, ControllerProc, enrollAgents, ferry, fmtMiB, fmtMs, freeDiskBytes, GiB, Janitor, MiB, progress, REPO, Report, runBounded, runSuite, sysDelta, sysSnap, waitConnected,
  type Enrolled, type SysDelta,
} from './kit.js';
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
  agents: Map<string, Array<Enrolled & { proc: AgentProc }>>;
  link: LinkShape;
}

/** One round's outcome per site. */
interface SiteResult { site: string; downBytes: number; upBytes: number; servedBytes: number; wallMs: number; ok: number; hosts: number }
interface RoundResult { label: string; wallMs: number; sites: SiteResult[]; sys: SysDelta; errors: string[] }

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

async function ferryRound(admin: Admin, layout: SiteLayout, version: string, timeoutMs: number): Promise<RoundResult> {
  const before = snapshot(layout.sites);
  const s0 = sysSnap();
  const r = await prefetch(admin, 'relay-bench', version, '', timeoutMs);
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
  return { label: 'ferry', wallMs: r.wallMs, sites, sys, errors };
}

/**
 * ===== RELAY ROW (c): TO BE ADDED ONCE SITE RELAYS LAND (issue 12) =====
 * Turn on one relay per site among `layout.agents` (the operator's way:
 * `ferry relay enable HOST` / a label, serving `site=<name>`), wait until the
 * site's agents have learned it, then run ferryRound() with a fresh bundle
 * version (the agents already hold the one (b) staged) and return it; the
 * report then adds row (c) with GOAL_UPLINK_RATIO per site. Until relays
 * exist this returns undefined and the report says (c) was not run: no
 * number is made up.
 */
async function relayRound(_layout: SiteLayout): Promise<RoundResult | undefined> {
  return undefined;
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
  const OUT = resolve(opt.out!);
  const LOGS = join(OUT, 'relays-logs');
  rmSync(LOGS, { recursive: true, force: true });
  mkdirSync(LOGS, { recursive: true });
  const j = new Janitor(SUITE, Boolean(opt.keep));
  // Expected: 8 copies per site at the link rate for (a) and (b) each; 3× that and 10 min of slack.
  const perRoundS = (8 * mib * MiB * 8) / (link.rateMbit * 1e6);
  return runSuite(j, Number(opt['timeout-min'] ?? Math.ceil((perRoundS * 3 * 3) / 60 + 10)), () => suite(j, { mib, link, OUT, LOGS, quick: Boolean(opt.quick), roundTimeoutMs: (perRoundS * 3 + 120) * 1000 }));
}

async function suite(j: Janitor, o: { mib: number; link: LinkShape; OUT: string; LOGS: string; quick: boolean; roundTimeoutMs: number }): Promise<number> {
  const { link, LOGS } = o;
  const SITES = 4;
  const PER_SITE = 8;
  const tmp = j.tempDir('ferry-bench-relays-');
  const need = o.mib * MiB * (SITES * PER_SITE + 3) + 4 * GiB;
  if (freeDiskBytes(tmp) < need) throw new Error(`needs ${(need / GiB).toFixed(1)} GiB free under ${tmp} (32 staged copies + package + controller store), has ${(freeDiskBytes(tmp) / GiB).toFixed(1)} GiB; try a smaller BENCH_RELAYS_MIB`);
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
  const dataDir = join(tmp, 'controller');
  const ctl = await ControllerProc.start(j, dataDir, `${sites.hub}:0`, join(LOGS, 'controller.log'));
  const admin = Admin.connect({ data: dataDir });
  j.onCleanup(() => admin.close());
  log(`controller pid ${ctl.pid} on ${ctl.address}`);
  const key = generateSigningKey();
  const pub = join(tmp, 'op.pub');
  writeFileSync(pub, key.publicPem);
  await ferry(j, dataDir, ['key', 'add', pub, '--name', 'bench', '--json']);
  const manifest = await buildManifest(pkg, { name: 'relay-bench', version: '1.0' });
  await pushBundle(admin, signManifest(manifest, key.privatePem), dirReader(pkg, manifest), { progress: false });

  // ---- floor and (a): nginx → curl ----
  const rounds: RoundResult[] = [];
  if (nginxInstalled()) {
    const ngx = await Nginx.start(j, join(tmp, 'nginx'), pkg, 2, sites.hub);
    const urls = files.map((f) => `https://${sites.hub}:${ngx.port}/${f.split('/').map(encodeURIComponent).join('/')}`);
    log('floor: one curl of the bundle across site-1\'s uplink');
    const floor = await curlRound(j, 'floor', sites, 1, urls, o.roundTimeoutMs, sites.site('site-1'));
    rounds.push(floor);
    log(`(a) nginx → curl on ${SITES * PER_SITE} hosts`);
    const cpu0 = ngx.cpuMs();
    const a = await curlRound(j, 'nginx', sites, PER_SITE, urls, o.roundTimeoutMs);
    rep.raw['nginxCpuMs'] = ngx.cpuMs() - cpu0;
    rounds.push(a);
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
    layout.agents.set(site.name, enrolled.map((e, i) => ({ ...e, proc: AgentProc.start(j, e, join(LOGS, `agent-${site.name}-${i + 1}.log`), [], process.env, ['ip', 'netns', 'exec', site.netns]) })));
  }
  const ids = [...layout.agents.values()].flat().map((a) => a.agentId);
  await waitConnected(admin, ids, 120_000);
  log(`${ids.length} agents connected from inside their sites`);

  // ---- (b) Ferry without relays ----
  log('(b) Ferry without relays: prefetch to every agent');
  const ctlCpu0 = ctl.cpuMs();
  const b = await ferryRound(admin, layout, '1.0', o.roundTimeoutMs);
  rep.raw['controllerCpuMs'] = ctl.cpuMs() - ctlCpu0;
  rounds.push(b);

  // ---- (c) Ferry with relays: see relayRound() ----
  const c = await relayRound(layout);
  if (c) rounds.push(c);

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
    if (!r) {
      if (label === 'relay') rep.row({ metric: what, goal: `≤ ${GOAL_UPLINK_RATIO}`, measured: 'not run: site relays are not in this build yet (relayRound() in scripts/bench/relays.ts)', result: 'info' });
      continue;
    }
    const ok = r.sites.reduce((s, x) => s + x.ok, 0);
    const hosts = r.sites.reduce((s, x) => s + x.hosts, 0);
    const ratios = r.sites.map((s) => s.downBytes / bytes);
    const worst = Math.max(...ratios);
    rep.row({
      metric: what, goal: label === 'relay' ? `≤ ${GOAL_UPLINK_RATIO}` : '—',
      measured: `wall ${fmtMs(r.wallMs)}, ${ok}/${hosts} hosts done; uplink down per site ${r.sites.map((s) => fmtMiB(s.downBytes, 0)).join(' / ')}; machine CPU ${r.sys.busyPct.toFixed(0)}% busy`,
      ratio: `${ratios.map((x) => x.toFixed(2)).join(' / ')} × bundle`,
      result: label === 'relay' ? (worst <= GOAL_UPLINK_RATIO ? 'PASS' : 'FAIL') : 'info', value: worst,
    });
    if (r.errors.length) rep.notes.push(`${r.label}: ${r.errors.length} host(s) failed: ${r.errors.slice(0, 5).join('; ')}`);
  }
  const sec = ['## Per site', '', `Bundle ${fmtMiB(bytes)} (${files.length} files). Uplink: ${linkText}. "Down" is the site uplink's WAN-side interface tx counter (Ethernet + IP + TCP headers and retransmissions included); "served" is the payload the server sent to that site's hosts (curl's size_download; Ferry: each agent's reported bytes fetched); "link busy" is down ÷ (site wall × rate).`, '',
    '| Round | Site | Hosts ok | Down (uplink) | ÷ bundle | Up (uplink) | Served to the site | Site wall | Link busy |', '|---|---|---|---|---|---|---|---|---|'];
  for (const r of rounds) {
    for (const s of r.sites) {
      const busy = (s.downBytes * 8) / ((s.wallMs / 1000) * link.rateMbit * 1e6);
      sec.push(`| ${r.label} | ${s.site} | ${s.ok}/${s.hosts} | ${fmtMiB(s.downBytes)} | ${ratio(s.downBytes)} | ${fmtMiB(s.upBytes)} | ${fmtMiB(s.servedBytes)} | ${fmtMs(s.wallMs)} | ${(busy * 100).toFixed(0)}% |`);
    }
  }
  sec.push('');
  rep.sections.push(...sec);
  rep.notes.push(
    `Sites are network namespaces (test/support/sites.ts, docs/bench-sites.md): each site's 8 hosts are 8 processes in its namespace sharing its one uplink; the controller and nginx are in the root namespace behind a routing "WAN" namespace. Rate: htb on both ends of the uplink; loss: iptables statistic each way (as packets enter the WAN from the site, and as they arrive in the site); ${link.rttMs ? 'delay: netem' : 'no delay: this kernel has no netem qdisc'}.`,
    `Ferry's processes are real: the controller (\`ferry controller start\`) and ${SITES * PER_SITE} \`ferry-agent run\` processes, each enrolled with \`ferry-agent join\` from inside its site. curl writes to /dev/null: it moves the bytes and checks nothing (no digest, nothing on disk) where every agent verifies and writes each chunk, so (a) is the generous side of the comparison.`,
    'Everything shares this machine\'s 2 cores: when "machine CPU" is near 100% the round was CPU-bound rather than link-bound, and the wall times say more about this box than about the links.',
    `Controller CPU during (b): ${fmtMs((rep.raw['controllerCpuMs'] as number) ?? Number.NaN)}; nginx CPU during (a): ${fmtMs((rep.raw['nginxCpuMs'] as number) ?? Number.NaN)}.`,
  );
  const md = rep.write(o.OUT);
  process.stdout.write(md + '\n');
  log(`wrote ${join(o.OUT, 'relays.md')} and relays.json; logs in ${LOGS}`);
  return 0;
}
