/**
 * Agent-upgrade benchmark suite (`node build/scripts/bench/run.js --suite upgrades [--quick]`;
 * not a test: it asserts nothing and writes bench-results/upgrades.md + .json).
 *
 * Issue 14's benchmark: an upgrade of N (100) agents to a release whose
 * binary differs from the running one by a few MiB — bytes moved per host
 * against the bytes that changed, and the time from `ferry agents upgrade`
 * to every host committed.
 *
 * Two real single binaries are built from this tree (scripts/build-agent.mjs,
 * this machine's architecture): the running one at this tree's version, and
 * the release at VERSION-bench.1 (the controller refuses releases newer than
 * itself, and the simulated agents report this tree's version, so the
 * release is a pre-release of it: for the version rules an older version,
 * for the bytes the same as any rebuild with another version string). The
 * release is added with `ferry agents release add` (signed), the upgrade is
 * `ferry agents upgrade --to … --waves 1,10%,100%` (the rollout engine),
 * and the hosts are simulated agents in `--procs` fleet processes whose
 * upgrade code is the agent's own, down to starting the switched binary as
 * a real process that reconnects and commits (upgrade-sim.ts says exactly
 * what is simulated: systemd and the watcher).
 *
 * Changed bytes: chunks of the release not in the running binary, once with
 * the bundle chunker's sizes (~1 MiB: what a host can at best avoid
 * fetching) and once with ~4 KiB chunks (closer to the bytes that really
 * differ; the same sub-chunk parameters the delta fetch uses,
 * SKETCH_CHUNKER). Bytes moved per host: the release stage's own count of
 * bytes fetched over the network (BundleProgress.bytes_fetched): whole
 * chunks, and for the sub-chunk delta fetch (agent/src/bundles/delta-fetch.ts)
 * the sketch replies and the range replies, both as encoded on the wire.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { platformArch } from '../../common/src/arch.js';
import { chunkFile } from '../../common/src/bundle/fastcdc.js';
import { SKETCH_CHUNKER } from '../../common/src/bundle/sketch.js';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { RolloutSnapshot } from '../../common/src/gen/ferry/v1/rollouts.js';
import { FERRY_VERSION } from '../../common/src/version.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import { ferry, Janitor, progress, REPO, runSuite } from './kit.js';
import { ControllerProc, waitConnected } from './ferry-procs.js';
import { fmtMiB, fmtMs, Report } from './report.js';
import { sysDelta, sysSnap } from './sys-counters.js';
import { FleetProcs, type SpawnNode } from './fleet-procs.js';
import { nodeCommand, sleep, stats } from './lib.js';
import { writeShims, type UpgradeSimTimes } from './upgrade-sim.js';

const SUITE = 'upgrades';
const log = (m: string) => progress(SUITE, m);
const NEW_VERSION = `${FERRY_VERSION}-bench.1`;
const GOAL_RATIO = 1.1;
const POLL_MS = 500;

/** Builds (when stale) the running binary and the release into dist/bench-upgrade-*. */
function buildBinaries(arch: string): { old: string; neu: string } {
  const dirs = { old: join(REPO, 'dist', 'bench-upgrade-current'), neu: join(REPO, 'dist', 'bench-upgrade-release') };
  for (const [dir, extra] of [[dirs.old, []], [dirs.neu, ['--agent-version', NEW_VERSION]]] as const) {
    log(`building ${dir} (--if-stale)`);
    execFileSync(process.execPath, [join(REPO, 'scripts', 'build-agent.mjs'), '--if-stale', '--arch', arch, '--out-dir', dir, ...extra], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return { old: join(dirs.old, `ferry-agent-linux-${arch}`), neu: join(dirs.neu, `ferry-agent-linux-${arch}`) };
}

/** Bytes of `neu` in chunks (of about `avg` bytes) that `old` does not have. */
async function novelBytes(old: string, neu: string, opts?: { minSize: number; avgSize: number; maxSize: number }): Promise<{ bytes: number; chunks: number; of: number; sha256: string }> {
  const a = await chunkFile(old, opts);
  const b = await chunkFile(neu, opts);
  const have = new Set(a.chunks.map((c) => c.digest));
  const seen = new Set<string>();
  let bytes = 0;
  let chunks = 0;
  for (const c of b.chunks) {
    if (have.has(c.digest) || seen.has(c.digest)) continue;
    seen.add(c.digest);
    bytes += c.length;
    chunks++;
  }
  return { bytes, chunks, of: b.size, sha256: a.sha256 };
}

export async function main(argv: string[]): Promise<number> {
  const { values: opt } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      agents: { type: 'string' },
      procs: { type: 'string', default: '2' },
      live: { type: 'string', default: '6' },
      out: { type: 'string', default: join(REPO, 'bench-results') },
      keep: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      'timeout-min': { type: 'string' },
    },
    strict: true,
  });
  const quick = Boolean(opt.quick);
  const n = Number(opt.agents ?? (quick ? 10 : 100));
  const procs = Math.max(1, Math.min(n, Number(opt.procs)));
  const live = Number(opt.live);
  if (!Number.isInteger(n) || n < 1 || n > 500 || !Number.isInteger(procs) || !Number.isInteger(live) || live < 1 || live > 64) {
    process.stderr.write('usage: run.js --suite upgrades [--quick] [--agents 1..500] [--procs P] [--live 1..64] [--out DIR] [--keep] [--timeout-min M]\n');
    return 2;
  }
  const OUT = resolve(opt.out!);
  const LOGS = join(OUT, `${SUITE}-logs`);
  mkdirSync(LOGS, { recursive: true });
  const j = new Janitor(SUITE, Boolean(opt.keep));
  return runSuite(j, Number(opt['timeout-min'] ?? (quick ? 10 : 30)), () => suite(j, { n, procs, live, quick, OUT, LOGS }));
}

interface Cfg { n: number; procs: number; live: number; quick: boolean; OUT: string; LOGS: string }

/** Polls the rollout until it ends; stops each host's new-version process once the controller recorded its commit. */
async function follow(ro: Rollouts, fleet: FleetProcs, id: string, timeoutMs: number): Promise<{ snap: RolloutSnapshot; polls: number }> {
  const stopped = new Set<string>();
  const t0 = Date.now();
  let polls = 0;
  for (;;) {
    await sleep(POLL_MS);
    polls++;
    const s = await ro.call(ro.client.get, { id, afterSeq: 0 });
    const done = s.hosts.filter((h) => ['succeeded', 'failed', 'cancelled'].includes(h.state) && !stopped.has(h.hostname)).map((h) => h.hostname);
    if (done.length) {
      for (const h of done) stopped.add(h);
      await fleet.all('upgradeStop', { names: done }, 60_000);
    }
    const st = s.info!.state;
    if (['succeeded', 'failed', 'aborted', 'paused'].includes(st) && !s.hosts.some((h) => h.state === 'running')) return { snap: s, polls };
    if (Date.now() - t0 > timeoutMs) throw new Error(`rollout ${id} still ${st} after ${timeoutMs / 1000} s: ${JSON.stringify(s.info!.counts)}`);
  }
}

async function suite(j: Janitor, cfg: Cfg): Promise<number> {
  const { n } = cfg;
  const arch = platformArch();
  const tmp = j.tempDir('ferry-bench-upgrades-');
  const rep = new Report(SUITE, `Ferry agent-upgrade benchmark — ${cfg.quick ? 'quick run' : 'full run'}`, { mode: cfg.quick ? '--quick' : 'full', agents: n, procs: cfg.procs, live: cfg.live, arch, from: FERRY_VERSION, to: NEW_VERSION });

  const bins = buildBinaries(arch);
  log('chunking both binaries (bundle chunk sizes and 4 KiB)');
  const coarse = await novelBytes(bins.old, bins.neu);
  const fine = await novelBytes(bins.old, bins.neu, SKETCH_CHUNKER);

  const dataDir = join(tmp, 'controller');
  const ctl = await ControllerProc.start(j, dataDir, '127.0.0.1:0', join(cfg.LOGS, 'controller.log'));
  const admin = Admin.connect({ data: dataDir });
  j.onCleanup(() => admin.close());
  const key = generateSigningKey();
  await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'bench' });
  const keyFile = join(tmp, 'ops.key');
  writeFileSync(keyFile, key.privatePem, { mode: 0o600 });
  const addT0 = performance.now();
  await ferry(j, dataDir, ['agents', 'release', 'add', bins.neu, '--key', keyFile], 300_000);
  const addMs = performance.now() - addT0;

  log(`enrolling ${n} simulated agents in ${cfg.procs} process(es)`);
  const spawnNode: SpawnNode = (args, needFds, stdio) => {
    const cmd = nodeCommand(args, needFds);
    return j.spawn(cmd.file, cmd.args, { stdio });
  };
  const fleet = await FleetProcs.start(spawnNode, n, cfg.procs, join(tmp, 'agents'), cfg.LOGS);
  j.onCleanup(() => fleet.stop((c) => j.stop(c)));
  const { joinString } = await admin.call(admin.client.createToken, { ttlMs: 3_600_000, maxUses: n, labels: [{ key: 'bench', value: 'upgrade' }] });
  const joins = await fleet.all<{ ok: number; errors: Record<string, number> }>('join', { joinString, timeoutMs: 120_000 }, 300_000);
  const enrolled = joins.reduce((s, r) => s + r.ok, 0);
  if (enrolled !== n) throw new Error(`only ${enrolled} of ${n} agents enrolled: ${JSON.stringify(joins.map((r) => r.errors))}`);
  const shimDir = join(tmp, 'no-systemd');
  writeShims(shimDir);
  await fleet.all('sessionsStart', { timeoutMs: 120_000, upgrade: { runningBinary: bins.old, runningSha256: coarse.sha256, maxLive: Math.max(1, Math.floor(cfg.live / cfg.procs)), shimDir, logDir: cfg.LOGS } }, 300_000);
  const { agents } = await admin.call(admin.client.listAgents, { selector: 'bench=upgrade', includeRevoked: false });
  await waitConnected(admin, agents.map((a) => a.id), 120_000);
  log(`${n} agents connected; settling`);
  await sleep(2_000);

  log(`ferry agents upgrade --to ${NEW_VERSION} on ${n} hosts, waves 1 / 10% / 100%`);
  const sys0 = sysSnap();
  const cpu0 = ctl.cpuMs();
  const fleetCpu0 = fleet.cpuMs();
  const t0 = Date.now();
  const out = await ferry(j, dataDir, ['agents', 'upgrade', '--to', NEW_VERSION, '--selector', 'bench=upgrade', '--waves', '1,10%,100%', '--json']);
  const id = (JSON.parse(out.split('\n').find((l) => l.trim())!) as { id: string }).id;
  const { snap, polls } = await follow(new Rollouts(admin), fleet, id, 25 * 60_000);
  const wallMs = Number(snap.info!.finishedAtMs || Date.now()) - t0;
  const cpuMs = ctl.cpuMs() - cpu0;
  const sys = sysDelta(sys0, sysSnap());
  const times = (await fleet.all<UpgradeSimTimes[]>('upgradeTimes', {}, 30_000)).flat();
  const fleetCpuMs = fleet.cpuMs() - fleetCpu0;
  const counts = Object.fromEntries(snap.info!.counts.map((c) => [c.state, c.count]));
  const committed = times.filter((t) => t.committed !== undefined);
  const errors = times.filter((t) => t.error).map((t) => `${t.name}: ${t.error}`);

  const fetched = times.filter((t) => t.fetched !== undefined).map((t) => t.fetched!);
  const fs = stats(fetched);
  const goal = GOAL_RATIO * fine.bytes;
  rep.row({ metric: `Release binary ${FERRY_VERSION} → ${NEW_VERSION} (${arch}): size; bytes in chunks the running binary lacks, bundle chunking (~1 MiB chunks) / ~4 KiB chunks`, measured: `${fmtMiB(coarse.of)}; ${fmtMiB(coarse.bytes, 2)} (${coarse.chunks} chunks) / ${fmtMiB(fine.bytes, 2)} (${fine.chunks} chunks)` });
  rep.row({ metric: `Bytes moved per host (release stage, fetched over the network: whole chunks + sketches + ranges): min / p50 / max over ${fetched.length} hosts, against the changed bytes (~4 KiB chunks)`, goal: `≤ ${GOAL_RATIO}× changed (${fmtMiB(goal, 2)})`, measured: `${fmtMiB(fs.min, 2)} / ${fmtMiB(fs.p50, 2)} / ${fmtMiB(fs.max, 2)}`, ratio: `${(fs.max / fine.bytes).toFixed(2)}× changed; ${(fs.max / coarse.bytes).toFixed(2)}× the bundle-chunk minimum`, result: fetched.length === n && fs.max <= goal ? 'PASS' : 'FAIL', value: fs.max, unit: 'bytes' });
  rep.row({ metric: 'Bytes moved for the fleet (sum) vs shipping the whole binary to every host', measured: `${fmtMiB(fetched.reduce((s, x) => s + x, 0))} vs ${fmtMiB(coarse.of * n)} (${((fetched.reduce((s, x) => s + x, 0) / (coarse.of * n)) * 100).toFixed(1)}%)` });
  rep.row({ metric: `Time from \`ferry agents upgrade\` to every host committed (${n} hosts, waves ${snap.waves.map((w) => w.size).join(' / ')})`, measured: `${fmtMs(wallMs)} (${snap.info!.state}: ${JSON.stringify(counts)}; ${committed.length}/${n} committed on the host)`, result: snap.info!.state === 'succeeded' && committed.length === n ? 'PASS' : 'FAIL', value: wallMs, unit: 'ms' });
  for (const w of snap.waves) rep.row({ metric: `… wave ${w.index + 1} (${w.size} hosts): started → done`, measured: fmtMs(Number(w.finishedAtMs) - Number(w.startedAtMs)) });
  const hostStart = new Map(snap.hosts.map((h) => [h.hostname, Number(h.startedAtMs)]));
  const span = (f: (t: UpgradeSimTimes) => number | undefined) => stats(times.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x)));
  const phases: Array<[string, (t: UpgradeSimTimes) => number | undefined]> = [
    ['host started (upgrade sent) → release staged and verified', (t) => (t.staged && hostStart.get(t.name) ? t.staged - hostStart.get(t.name)! : undefined)],
    ['staged → switched (version check, disk, install, guard, rename)', (t) => (t.switched && t.staged ? t.switched - t.staged : undefined)],
    [`switched → new version started (waits for one of ${cfg.live} restart slots)`, (t) => (t.started && t.switched ? t.started - t.switched : undefined)],
    ['new version started → committed (start, mTLS reconnect, self-check, commit)', (t) => (t.committed && t.started ? t.committed - t.started : undefined)],
  ];
  for (const [name, f] of phases) {
    const s = span(f);
    rep.row({ metric: `… per host: ${name}, p50 / p99`, measured: `${fmtMs(s.p50)} / ${fmtMs(s.p99)}` });
  }
  rep.row({ metric: 'Where the time went: machine CPU busy; controller vs fleet CPU (simulated agents and the new-version processes they start are not all counted: the latter are grandchildren)', measured: `${sys.busyPct.toFixed(0)}% busy; controller ${(cpuMs / 1000).toFixed(1)} CPU-s, fleet processes ${(fleetCpuMs / 1000).toFixed(1)} CPU-s; disk written ${fmtMiB(sys.diskWrittenBytes)}` });
  rep.row({ metric: '`ferry agents release add` of the release (chunk, sign, push)', measured: fmtMs(addMs) });
  if (errors.length) rep.row({ metric: 'Host errors', measured: errors.slice(0, 5).join('; ') });
  rep.notes.push(
    `Real: two single binaries built from this tree (the release reports ${NEW_VERSION}; see upgrades.ts for why a pre-release), the signed release added by the CLI, the rollout by \`ferry agents upgrade\`, and on each host the agent's upgrade code: manifest check, staging with the running binary's chunks reused and the rest fetched and verified, \`version --json\` of the staged binary, disk check, versioned install and marker, guard drop-in file, atomic switch of the path; then the switched path is started as a real process that reconnects over mTLS, self-checks, commits and reports, and the controller records the commit that makes the host succeed.`,
    `Simulated: systemd (the hosts' systemctl answers the ExecStart query and succeeds for the rest; the new processes get a systemctl, systemd-run and journalctl that fail, so nothing reaches this machine's systemd); the watcher is not run, so no rollback is possible here (test/e2e/agent-upgrade*.test.ts cover it on simulated hosts with real systemd). The old agents are simulated agents (the real agent code, several per process), stopped when their host restarts.`,
    `All ${n} hosts share this machine's 2 cores and one disk: each host copies the ~${fmtMiB(coarse.of, 0)} binary twice (staged file, versioned install) and chunk-hashes the running one (at bundle-chunk and at sub-chunk size), which real hosts do in parallel on their own disks; at most ${cfg.live} new-version processes run at once (a host waits for a slot between its switch and its restart; the per-phase rows show that wait). The time to all committed is therefore dominated by local CPU and disk, not by the controller or the network.`,
    `The goal is against the ~4 KiB-chunk changed bytes. Bundle chunks stay ~1 MiB (small manifests); for a chunk the running binary lacks, the host asks the controller for its sketch (Chunks.Sketch: the chunk's ~4 KiB sub-chunks by the same FastCDC with small parameters, each a length and 8 bytes of its sha256, ~10 bytes per 4 KiB), copies the sub-chunks the running binary holds (indexed once per stage at the same parameters), fetches only the missing byte ranges (Chunks.FetchRanges, coalesced) and checks the assembled chunk against its full sha256; a mismatch fetches the whole chunk. Bytes moved count both the sketch and the range replies. It can go below the bundle-chunk minimum of the first row, not below the ~4 KiB figure plus the sketches (and a sub-chunk per chunk, where the chunk's first cut does not line up with the running binary's).`,
  );
  rep.raw['run'] = { wallMs, cpuMs, fleetCpuMs, sys, polls, counts, coarse, fine, addMs, times, hosts: snap.hosts.map((h) => ({ hostname: h.hostname, state: h.state, message: h.message })) };
  if (!existsSync(cfg.OUT)) mkdirSync(cfg.OUT, { recursive: true });
  const md = rep.write(cfg.OUT);
  process.stdout.write(`${md}\n`);
  return snap.info!.state === 'succeeded' ? 0 : 1;
}
