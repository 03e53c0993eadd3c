/**
 * Foundation benchmark (not a test, it asserts nothing and writes a table).
 * `npm run bench` runs every suite (suites.ts); this one alone, with its options:
 *
 *   node build/scripts/bench/run.js --suite foundation [--agents 500] [--procs 2] [--rounds 5]
 *                                   [--out bench-results] [--timeout-min M] [--join-timeout-ms MS]
 *                                   [--profile] [--keep]
 *
 * --profile samples the enrollment controller's CPU and diffs heap snapshots
 * without and with the sessions (the heap diff also runs by itself when the
 * memory goal is missed); --keep keeps the temp directory.
 *
 * 1. Enrollment: N simulated agents (the real agent code, in `--procs` child
 *    processes) join one controller at once; rate = N / wall time of all joins,
 *    agent-side key generation and CSR included.
 * 2. Idle sessions: the controller is restarted on the same port (a clean
 *    process, so enrollment garbage is not counted), N session loops connect,
 *    and after a settle the controller's RSS (/proc/PID/status) is compared
 *    with its settled baseline; per session = delta / N.
 * 3. Fan-out: `exec echo hi` to all N through the admin API (what `ferry exec`
 *    uses), `--rounds` times, plus one round through the real CLI; per-host
 *    latency is from sending the request to that host's first output line.
 * 4. Peers, for context: plain Node TLS + HTTPS for the enrollment handshakes,
 *    plain Node HTTP/2 over mTLS for the idle connections, plain spawn() for
 *    the fan-out's process starts.
 *
 * The controller runs as `node bin/ferry.js controller start` in a process of
 * its own, with controller-probe.js preloaded for GC and heap figures. Only
 * 127.0.0.1 is used. Every child process and temp directory is removed at the
 * end, also on failure or Ctrl-C.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { enroll } from './foundation-enroll.js';
import { fanOut } from './foundation-fanout.js';
import { GOAL_SESSION_KIB, parseFoundationOptions, SETTLE_MS } from './foundation-options.js';
import { peers } from './foundation-peers.js';
import { FoundationProcs, progress } from './foundation-procs.js';
import { markdown, notes, raw, rows } from './foundation-report.js';
import { idleSessions, sessionHeapProfile } from './foundation-sessions.js';
import { fdLimit } from './lib.js';
import { gitVersion } from './report.js';
import { dispatchSuite } from './suites.js';

// `--suite bundles|steps`, and no --suite at all (every suite), are run by
// suites.ts and never return; `--suite foundation` (and --quick) comes back here.
await dispatchSuite();

// The parts of the run: options (foundation-options.ts), its processes
// (foundation-procs.ts), one file a phase (foundation-enroll.ts,
// foundation-sessions.ts, foundation-fanout.ts, foundation-peers.ts) and
// the table (foundation-report.ts); this file puts them in order.
const o = parseFoundationOptions();
const { agents: N, procs: PROCS, rounds: ROUNDS, timeoutMin: TIMEOUT_MIN, out: OUT, logs: LOGS, goalEnrollS: GOAL_ENROLL_S } = o;
const procs = new FoundationProcs(o.keep);
const { tmp } = procs;

// ---- the run ------------------------------------------------------------------------

async function main(): Promise<number> {
  mkdirSync(LOGS, { recursive: true });
  const fd = fdLimit();
  // source: which code was measured, by git alone (this run has never read FERRY_BENCH_SOURCE, as report.ts's sourceVersion does).
  const meta: Record<string, unknown> = {
    date: new Date().toISOString(), node: process.versions.node, cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? '?',
    memGiB: (totalmem() / 2 ** 30).toFixed(1), loadBefore: loadavg().map((l) => l.toFixed(2)).join(' '),
    fdLimit: `${fd.soft}/${fd.hard}`, agents: N, procs: PROCS, rounds: ROUNDS, tmp, source: gitVersion(),
  };
  if (N < 200) notes.push(`with only ${N} agents, the RSS deltas per session are within the noise of V8's heap sizing (a few MiB); use the default 500 for memory figures`);
  if (fd.soft < N * 2 + 512) {
    notes.push(fd.hard >= N * 2 + 512
      ? `open-files soft limit ${fd.soft} is low for ${N} agents; children were started with \`ulimit -n\` raised`
      : `open-files hard limit ${fd.hard} may be too low for ${N} agents (needs about ${N * 2 + 512} in the controller)`);
  }
  const dataDir = join(tmp, 'controller');
  const stateRoot = join(tmp, 'agents');
  mkdirSync(stateRoot, { recursive: true });

  // ---- 1. enrollment ----
  const e = await enroll(o, procs, dataDir, stateRoot);
  const { fleet, enrolled } = e;

  // ---- 2. idle sessions, on a fresh controller process ----
  const s = await idleSessions(o, procs, dataDir, e);
  const { ctl, admin, stillConnected, perSessionGc, cpuProfile } = s;

  // ---- 3. fan-out ----
  const fan = await fanOut(o, procs, admin, ctl, fleet, stillConnected, dataDir);

  // ---- optional: where does per-session memory go ----
  const profile = await sessionHeapProfile(o, procs, fleet, s, enrolled);

  progress('stopping sessions and the controller');
  await fleet.all('sessionsStop', {}, 60_000);
  admin.close();
  const ctlPem = {
    certChainPem: readFileSync(join(dataDir, 'pki/server.crt'), 'utf8') + readFileSync(join(dataDir, 'pki/ca.crt'), 'utf8'),
    keyPem: readFileSync(join(dataDir, 'pki/server.key'), 'utf8'),
    caPem: readFileSync(join(dataDir, 'pki/ca.crt'), 'utf8'),
  };
  await ctl.stop();

  // ---- 4. peers ----
  await peers(o, procs, fleet, ctlPem, { perSessionGc, enrollWallMs: e.enrollWallMs, keygenWall: e.keygenWall, keygen: e.keygen, fan });

  // ---- write ----
  meta['loadAfter'] = loadavg().map((l) => l.toFixed(2)).join(' ');
  notes.push(
    'Goals are for this 2-core machine; the controller, the agent processes and the peers share both cores, and other work on the machine shows in the load averages above.',
    `Simulated agents are the real agent code (join, SessionLoop, exec runner), ${Math.ceil(N / PROCS)} per process with one libuv thread pool per process; host facts are collected once and reused with a distinct hostname per agent.`,
    `Per-session memory = (controller VmRSS with the sessions − VmRSS of the freshly restarted controller) / sessions, each taken after ${SETTLE_MS / 1000} s of quiet and forced GCs repeated until RSS holds still; the controller is restarted after enrollment so that enrollment garbage is not counted. The same procedure measures the HTTP/2 peer.`,
    'Fan-out latency is measured in the operator process: from the ExecRequest being sent to the first `line` event of each host; every host spawns a real `echo` process.',
  );
  const md = markdown(o, meta, profile, cpuProfile);
  writeFileSync(join(OUT, 'foundation.md'), md);
  writeFileSync(join(OUT, 'foundation.json'), JSON.stringify({ meta, goals: { enrollSeconds: GOAL_ENROLL_S, sessionKiB: GOAL_SESSION_KIB }, rows, notes, raw }, null, 2) + '\n');
  process.stdout.write(md + '\n');
  progress(`wrote ${join(OUT, 'foundation.md')} and foundation.json; logs in ${LOGS}`);
  // A missed goal is a result, not an error: the table says so.
  return 0;
}

const deadline = setTimeout(() => {
  progress(`the whole run exceeded ${TIMEOUT_MIN} min; giving up`);
  void procs.cleanup().then(() => process.exit(3));
}, TIMEOUT_MIN * 60_000);
deadline.unref();

main().then(
  async (code) => {
    await procs.cleanup();
    process.exit(code);
  },
  async (err: unknown) => {
    progress(`failed: ${(err as Error)?.stack ?? String(err)}`);
    if (existsSync(LOGS)) progress(`logs of this run are in ${LOGS}`);
    await procs.cleanup();
    process.exit(1);
  },
);
