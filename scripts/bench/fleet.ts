/**
 * One process of simulated agents for the foundation benchmark, driven by
 * run.ts over IPC. Each simulated agent is the real agent code (join,
 * SessionLoop, exec runner) with its own state directory; only the host facts
 * are collected once and reused, with a distinct hostname per agent. The peer
 * measurements (plain TLS/HTTPS, plain HTTP/2, plain spawn) run here too, so
 * they share the client side's process layout with the agents.
 */
import { spawn } from 'node:child_process';
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { join as pathJoin } from 'node:path';
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { writeHeapSnapshot } from 'node:v8';
import { join } from '../../agent/src/enroll/join.js';
import { collectFacts } from '../../agent/src/facts.js';
import type { ExecRunner } from '../../agent/src/exec/exec-runner.js';
import type { JobRunner } from '../../agent/src/jobs/job-runner.js';
import type { Outbox } from '../../agent/src/session/outbox.js';
import type { BundleStager } from '../../agent/src/bundles/stager.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import type { SessionState } from '../../agent/src/session/session-options.js';
import { AgentState } from '../../agent/src/state/agent-state.js';
import { asFerryError } from '../../common/src/errors.js';
import type { HostFacts } from '../../common/src/gen/ferry/v1/common.js';
import { silentLogger } from '../../common/src/log.js';
import { createCsr, generateKeyPair } from '../../common/src/pki.js';
import { serveRpc, sleep } from './lib.js';
import { UpgradeSim, type UpgradeSimOptions } from './upgrade-sim.js';

type StagerLike = Pick<BundleStager, 'stage'>;

interface SimAgent {
  index: number;
  state: AgentState;
  facts: HostFacts;
  enrolled: boolean;
  loop?: SessionLoop;
  connectedAt?: number;
}

let agents: SimAgent[] = [];
let lag: IntervalHistogram | undefined;
/** The agent-upgrade benchmark's simulated hosts (upgrades.ts), when sessionsStart was given `upgrade`. */
let upgradeSim: UpgradeSim | undefined;
const log = silentLogger();
const h2Held: Array<{ session: ClientHttp2Session; stream: ClientHttp2Stream }> = [];
const tlsHeld: TLSSocket[] = [];

/** Wall-clock time in ms with sub-ms precision, comparable across processes on this machine. */
const now = () => performance.timeOrigin + performance.now();

/**
 * Per exec job, when the agent code saw it: execStart delivered to the
 * runner, the runner's spawn returned, the first output line handed to the
 * outbox. Recorded by wrapping the runner and outbox of each SessionLoop
 * from outside; the agent code itself is unchanged.
 */
interface JobTimes { arrived: number; spawned?: number; firstLine?: number }
const jobTimes = new Map<string, JobTimes>();

/**
 * Per plan job (rollout host jobs), when the agent code reported its first
 * step started and its result: the moment the step event / result was handed
 * to the outbox.
 */
interface PlanTimes { arrived?: number; firstStep?: number; result?: number; status?: string; steps: number }
const planTimes = new Map<string, PlanTimes>();

interface Wrappable {
  runner?: ExecRunner;
  work?: { exec: ExecRunner; outbox: Outbox; jobs?: JobRunner };
  outbox?: Outbox;
}

function instrument(loop: SessionLoop): void {
  // The exec runner lived on the loop itself and now lives in its AgentWork; take whichever exists.
  const l = loop as unknown as Wrappable;
  const runner = l.work?.exec ?? l.runner;
  const outbox = l.work?.outbox ?? l.outbox;
  if (!runner || !outbox) throw new Error('cannot find the session loop\'s exec runner and outbox to time exec jobs');
  const start = runner.start.bind(runner);
  runner.start = (job) => {
    const t: JobTimes = { arrived: now() };
    if (!jobTimes.has(job.jobId)) jobTimes.set(job.jobId, t);
    start(job);
    t.spawned = now();
  };
  const jobs = l.work?.jobs;
  if (jobs) {
    const startJob = jobs.start.bind(jobs);
    jobs.start = (job) => {
      if (!planTimes.has(job.jobId)) planTimes.set(job.jobId, { arrived: now(), steps: 0 });
      startJob(job);
    };
  }
  const push = outbox.push.bind(outbox);
  outbox.push = (jobId, seq, msg) => {
    const t = jobTimes.get(jobId);
    if (t && t.firstLine === undefined && msg.msg?.$case === 'output') t.firstLine = now();
    const m = msg.msg;
    if (m?.$case === 'stepEvent' || m?.$case === 'jobResult') {
      let p = planTimes.get(jobId);
      if (!p) planTimes.set(jobId, (p = { steps: 0 }));
      if (m.$case === 'stepEvent' && !m.value.finished) {
        p.firstStep ??= now();
        p.steps++;
      } else if (m.$case === 'jobResult') {
        p.result ??= now();
        p.status = m.value.status;
      }
    }
    push(jobId, seq, msg);
  };
}

/** Records the progress of release stages (the agent's own stager, wrapped from outside like instrument()). */
function watchStages(loop: SessionLoop, name: string, sim: UpgradeSim): void {
  const stager = (loop as unknown as { work?: { stager: StagerLike } }).work?.stager;
  if (!stager) throw new Error('cannot find the session loop\'s bundle stager to measure release stages');
  const stage = stager.stage.bind(stager);
  stager.stage = (req, report, signal, localFiles) => {
    if (!localFiles) return stage(req, report, signal, localFiles);
    return stage(req, (p) => { sim.progress(name, p); report(p); }, signal, localFiles).then(() => sim.staged(name));
  };
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** Runs `fn` for every agent at once; per-item latency (ms) and errors. */
async function concurrently<T>(items: T[], fn: (item: T) => Promise<void>): Promise<{ wallMs: number; latencies: number[]; errors: Record<string, number> }> {
  const latencies: number[] = [];
  const errors: string[] = [];
  const t0 = performance.now();
  await Promise.all(items.map(async (item) => {
    const s = performance.now();
    try {
      await fn(item);
      latencies.push(performance.now() - s);
    } catch (err) {
      const fe = asFerryError(err);
      // Numbers (timings, ports, ids) differ per agent; without them, equal errors count together.
      errors.push(`${fe.code}: ${fe.message}`.replace(/\d+(\.\d+)?/g, 'N').slice(0, 200));
    }
  }));
  return { wallMs: performance.now() - t0, latencies, errors: countBy(errors) };
}

function sessionStates(): Record<string, number> {
  return countBy(agents.map((a) => (a.loop ? a.loop.state : 'none')));
}

serveRpc({
  async init(args: { count: number; firstIndex: number; stateRoot: string }) {
    const facts = await collectFacts();
    agents = Array.from({ length: args.count }, (_, k) => {
      const index = args.firstIndex + k;
      const name = `bench-${String(index).padStart(4, '0')}`;
      return { index, state: new AgentState(pathJoin(args.stateRoot, name)), facts: { ...facts, hostname: name }, enrolled: false };
    });
    return { agents: agents.length, pid: process.pid };
  },

  /** What key generation + CSR alone cost for all agents here, concurrently (the agent side of a join). */
  async keygen() {
    return concurrently(agents, async () => { await createCsr(await generateKeyPair()); });
  },

  /** Every agent joins at once; the real join: pin probe, key + CSR, Enroll call, state written. */
  async join(args: { joinString: string; timeoutMs: number }) {
    const r = await concurrently(agents, async (a) => {
      await join({ joinString: args.joinString, state: a.state, facts: a.facts, timeoutMs: args.timeoutMs });
      a.enrolled = true;
    });
    return { ...r, ok: agents.filter((a) => a.enrolled).length };
  },

  /** Starts a session loop per enrolled agent; resolves when all are connected or at the deadline. */
  async sessionsStart(args: { timeoutMs: number; root?: string; upgrade?: UpgradeSimOptions }) {
    const t0 = performance.now();
    const connectMs: number[] = [];
    if (args.upgrade) upgradeSim ??= new UpgradeSim(args.upgrade);
    for (const a of agents) {
      if (!a.enrolled) continue;
      a.connectedAt = undefined;
      const name = a.facts.hostname;
      const sim = args.upgrade ? upgradeSim : undefined;
      const link = sim?.prepare(name, a.state.dir);
      const loop = new SessionLoop({
        ...(sim && link ? { upgradeHost: sim.host(name, a.state.dir, link, async () => { await a.loop?.stop(2_000); a.loop = undefined; }) } : {}),
        state: a.state,
        facts: () => Promise.resolve(a.facts),
        log,
        root: args.root,
        onState: (s: SessionState) => {
          if (s === 'connected' && a.connectedAt === undefined) {
            a.connectedAt = performance.now();
            connectMs.push(a.connectedAt - t0);
          }
        },
      });
      a.loop = loop;
      instrument(loop);
      if (sim) watchStages(loop, name, sim);
      loop.start();
    }
    const want = agents.filter((a) => a.enrolled).length;
    const until = Date.now() + args.timeoutMs;
    while (Date.now() < until && agents.filter((a) => a.loop?.state === 'connected').length < want) await sleep(50);
    return { wallMs: performance.now() - t0, want, connected: agents.filter((a) => a.loop?.state === 'connected').length, connectMs, states: sessionStates() };
  },

  sessionsStatus() {
    return { states: sessionStates() };
  },

  /** Job timings recorded since the last call (and forgets them). */
  jobTimes() {
    const out = Object.fromEntries(jobTimes);
    jobTimes.clear();
    return out;
  },

  /** Starts measuring this process's event-loop delay (how long ready work waits here). */
  lagStart() {
    lag?.disable();
    lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    return {};
  },

  /** Event-loop delay since lagStart, in ms. */
  lagStop() {
    if (!lag) return {};
    lag.disable();
    const ms = (ns: number) => ns / 1e6;
    const r = { p50: ms(lag.percentile(50)), p99: ms(lag.percentile(99)), max: ms(lag.max) };
    lag = undefined;
    return r;
  },

  /** Plan-job timings recorded since the last call (and forgets them). */
  planTimes() {
    const out = Object.fromEntries(planTimes);
    planTimes.clear();
    return out;
  },

  /** Per simulated host: release bytes fetched and when it staged, switched, restarted and committed (upgrades.ts). */
  upgradeTimes() {
    return upgradeSim ? [...upgradeSim.times.values()] : [];
  },

  /** Stops the new-version processes of these hosts (their commits are recorded by the controller). */
  async upgradeStop(args: { names: string[] }) {
    await upgradeSim?.stop(args.names);
    return {};
  },

  async sessionsStop() {
    const t0 = performance.now();
    await Promise.all(agents.map((a) => a.loop?.stop(2_000)));
    for (const a of agents) a.loop = undefined;
    return { wallMs: performance.now() - t0 };
  },

  /**
   * Peer for enrollment: per agent, what a join does on the wire without
   * gRPC or Ferry's checks: one bare TLS handshake (the pin probe) and one
   * HTTPS POST of a CSR-sized body on a fresh connection, answered with a
   * certificate-sized body.
   */
  async peerTls(args: { address: string; caPem: string; bodyBytes: number }) {
    const { host, port } = splitHostPort(args.address);
    const body = 'x'.repeat(args.bodyBytes);
    return concurrently(agents, async () => {
      await new Promise<void>((resolve, reject) => {
        const s = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
          s.getPeerCertificate(true);
          s.destroy();
          resolve();
        });
        s.on('error', reject);
      });
      await new Promise<void>((resolve, reject) => {
        const req = httpsRequest({
          host, port, method: 'POST', path: '/enroll', ca: args.caPem, agent: false,
          headers: { 'content-type': 'application/octet-stream', 'content-length': body.length },
        }, (res) => {
          res.resume();
          res.on('end', resolve);
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      });
    });
  },

  /** Peer for idle sessions: one mTLS HTTP/2 connection per agent (its own certificate) with one open stream. */
  async h2Hold(args: { address: string; caPem: string }) {
    return concurrently(agents.filter((a) => a.enrolled), async (a) => {
      const { keyPem, certPem } = a.state.load();
      const session = h2connect(`https://${args.address}`, { ca: args.caPem, key: keyPem, cert: certPem });
      const stream = await new Promise<ClientHttp2Stream>((resolve, reject) => {
        session.on('error', reject);
        const st = session.request({ ':method': 'POST', ':path': '/hold' }, { endStream: false });
        st.on('response', () => resolve(st));
        st.on('error', reject);
      });
      h2Held.push({ session, stream });
    });
  },

  /** Peer for idle sessions without HTTP/2: one bare mTLS connection per agent; one byte each way, then idle. */
  async tlsHold(args: { address: string; caPem: string }) {
    const { host, port } = splitHostPort(args.address);
    return concurrently(agents.filter((a) => a.enrolled), async (a) => {
      const { keyPem, certPem } = a.state.load();
      const s = await new Promise<TLSSocket>((resolve, reject) => {
        const sock = tlsConnect({ host, port, ca: args.caPem, key: keyPem, cert: certPem }, () => sock.write('h'));
        sock.once('data', () => resolve(sock));
        sock.on('error', reject);
      });
      tlsHeld.push(s);
    });
  },

  async tlsRelease() {
    for (const s of tlsHeld.splice(0)) s.destroy();
    return {};
  },

  async h2Release() {
    for (const h of h2Held.splice(0)) {
      h.stream.close();
      h.session.close();
    }
    return {};
  },

  /** Peer for exec fan-out: `echo hi` spawned for every agent here at once; ms from spawn() to the first line. */
  async spawnEcho() {
    return concurrently(agents, () => new Promise<void>((resolve, reject) => {
      const child = spawn('echo', ['hi'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
      child.on('error', reject);
      const rl = createInterface({ input: child.stdout! });
      let got = false;
      rl.once('line', () => { got = true; resolve(); });
      rl.on('close', () => { if (!got) reject(new Error('no output')); });
    }));
  },

  /** This process's memory; with `gc`, after forced collections (the process runs with --expose-gc). */
  async mem(args: { gc?: boolean }) {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (args.gc && gc) for (let i = 0; i < 2; i++) { gc(); await sleep(50); }
    const mu = process.memoryUsage();
    return { rss: mu.rss, heapUsed: mu.heapUsed, external: mu.external, resources: countBy(process.getActiveResourcesInfo()) };
  },

  /** A heap snapshot of this process (after forced GC), for finding what agents keep per job. */
  async snapshot(args: { path: string }) {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc) for (let i = 0; i < 2; i++) { gc(); await sleep(50); }
    return writeHeapSnapshot(args.path);
  },

  async exit() {
    await upgradeSim?.stopAll();
    setTimeout(() => process.exit(0), 50);
    return {};
  },
}, () => process.exit(0));
