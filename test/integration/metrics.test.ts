import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateSigningKey } from '../../common/src/bundle/manifest.js';
import type { JobEvent } from '../../common/src/gen/ferry/v1/admin.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { silentLogger } from '../../common/src/log.js';
import { signPlan } from '../../common/src/plan/signed-plan.js';
import { join as joinFleet } from '../../agent/src/enroll/join.js';
import { AgentState } from '../../agent/src/state/agent-state.js';
import { SessionLoop } from '../../agent/src/session/session-loop.js';
import { Backoff } from '../../agent/src/session/backoff.js';
import { Admin } from '../../controller/src/cli/admin-client.js';
import { Rollouts } from '../../controller/src/cli/cmd-rollout-client.js';
import { byDigest, pushBundle } from '../../controller/src/cli/bundle-push.js';
import type { Controller } from '../../controller/src/controller.js';
import { OpsHttp } from '../../controller/src/metrics/ops-http.js';
import { memBundle, randomFile } from '../support/bundles.js';
import { cleanup, enrollAgent, fakeFacts, joinString, startController, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';

/** One scrape, parsed: `name{labels}` (labels as written by prom-client) → value. */
async function scrape(c: Controller): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${c.httpPort}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const out = new Map<string, number>();
  // Every series names the replica (its id, also for a single controller); the keys below leave that label out.
  const label = `replica="${c.replicaId}"`;
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    const series = line.slice(0, i);
    assert.ok(series.includes(label), `a series without ${label}: ${series}`);
    out.set(series.replace(`,${label}`, '').replace(`${label},`, '').replace(`{${label}}`, ''), Number(line.slice(i + 1)));
  }
  return out;
}

const PLAN = `name: metrics-demo
steps:
  - id: hello
    type: exec
    args:
      argv: [sh, -c, "echo hi"]
  - id: check
    type: assert
    args:
      command: "true"
`;

describe('/metrics, /healthz and /readyz over HTTP (real controller, real agents)', function () {
  this.timeout(120_000);
  let c: Controller;
  let admin: Admin;
  const agents: TestAgent[] = [];
  const key = generateSigningKey();

  before(async () => {
    c = await startController({ 'http-addr': '127.0.0.1:0' });
    admin = Admin.connect({ adminSocket: c.config.adminSocket });
    await admin.call(admin.client.addSigningKey, { publicPem: key.publicPem, name: 'ops' });
  });
  after(async () => { admin.close(); await cleanup(c, agents); });

  it('answers /healthz and /readyz, and names the others on a 404', async () => {
    const h = await fetch(`http://127.0.0.1:${c.httpPort}/healthz`);
    assert.equal(h.status, 200);
    assert.equal(await h.text(), 'ok\n');
    const r = await fetch(`http://127.0.0.1:${c.httpPort}/readyz`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'ok store\nok grpc\nready\n');
    const nf = await fetch(`http://127.0.0.1:${c.httpPort}/nope`);
    assert.equal(nf.status, 404);
    assert.match(await nf.text(), /\/metrics, \/healthz or \/readyz/);
    const post = await fetch(`http://127.0.0.1:${c.httpPort}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
  });

  it('counts enrollments by outcome, agents by state and sessions', async () => {
    const before = await scrape(c);
    assert.equal(before.get('ferry_enrollments_total{outcome="enrolled",code=""}'), 0);
    assert.equal(before.get('ferry_agents{state="online"}'), 0);
    assert.equal(before.get('ferry_sessions'), 0);

    const a = await enrollAgent(c, 'edge-1', { start: false });
    a.loop = new SessionLoop({ state: a.state, facts: async () => fakeFacts('edge-1'), log: silentLogger(), backoff: new Backoff(50, 500), root: tempDir('ferry-root-') });
    a.loop.start();
    agents.push(a);
    await waitFor(() => a.loop.state === 'connected', 10_000, 'connected');
    // A token used up: the second host is refused, and counted with the code it got.
    const js = await joinString(c, { uses: 1 });
    agents.push(await enrollAgent(c, 'edge-2', { js, start: false }));
    await assert.rejects(joinFleet({ joinString: js, state: new AgentState(tempDir('ferry-agent-')), facts: fakeFacts('edge-3') }));

    const after = await scrape(c);
    assert.equal(after.get('ferry_enrollments_total{outcome="enrolled",code=""}'), 2);
    const refused = [...after].filter(([k]) => k.startsWith('ferry_enrollments_total{outcome="refused"'));
    assert.deepEqual(refused, [['ferry_enrollments_total{outcome="refused",code="TOKEN_EXHAUSTED"}', 1]]);
    assert.equal(after.get('ferry_agents{state="online"}'), 1);
    assert.equal(after.get('ferry_agents{state="offline"}'), 1);
    assert.equal(after.get('ferry_agents{state="revoked"}'), 0);
    assert.equal(after.get('ferry_sessions'), 1);
    // Every call went through the one boundary: enrollment latency is there, per method.
    assert.ok((after.get('ferry_grpc_server_handling_seconds_count{service="ferry.v1.Enrollment",method="Enroll",type="unary"}') ?? 0) >= 3);
    assert.ok((after.get('ferry_grpc_server_handled_total{service="ferry.v1.Enrollment",method="Enroll",type="unary",code="OK"}') ?? 0) >= 2);
  });

  it('counts host jobs, step results by type and status, and job states', async () => {
    const before = await scrape(c);
    await admin.call(admin.client.pushPlan, { signed: signPlan(PLAN, 'metrics-demo.yaml', key.privatePem) });
    await new Promise<void>((resolve, reject) => {
      const s = admin.client.runPlan({ plan: 'metrics-demo', params: {}, selector: '', hosts: [agents[0]!.id], all: false, check: false, concurrency: 0, timeoutMs: 0 });
      s.on('data', (_ev: JobEvent) => undefined);
      s.on('error', (e) => reject(fromServiceError(e)));
      s.on('end', () => resolve());
    });
    const after = await scrape(c);
    const delta = (k: string) => (after.get(k) ?? 0) - (before.get(k) ?? 0);
    assert.equal(delta('ferry_host_jobs_started_total{kind="plan"}'), 1);
    assert.equal(delta('ferry_host_jobs{kind="plan",state="succeeded"}'), 1);
    assert.equal(delta('ferry_step_results_total{type="exec",status="changed"}'), 1);
    assert.equal(delta('ferry_step_results_total{type="assert",status="unchanged"}'), 1);
    assert.ok(delta('ferry_grpc_server_handling_seconds_count{service="ferry.v1.Admin",method="RunPlan",type="server_stream"}') === 1);
  });

  it('shows rollouts by state, and the rollout host job and steps it ran', async () => {
    const before = await scrape(c);
    assert.equal(before.get('ferry_rollouts{state="succeeded"}'), 0);
    assert.equal(before.get('ferry_rollouts{state="running"}'), 0);
    const ro = new Rollouts(admin);
    const { id } = await ro.call(ro.client.create, { spec: `plan: metrics-demo\ntargets: { hosts: [${agents[0]!.id}] }\n`, file: 'r.yaml' });
    await waitFor(async () => (await ro.call(ro.client.get, { id, afterSeq: 0 })).info!.state === 'succeeded', 30_000, 'the rollout to succeed');
    const after = await scrape(c);
    assert.equal(after.get('ferry_rollouts{state="succeeded"}'), 1);
    assert.equal(after.get('ferry_rollouts_paused'), 0);
    assert.equal((after.get('ferry_host_jobs_started_total{kind="plan"}') ?? 0) - (before.get('ferry_host_jobs_started_total{kind="plan"}') ?? 0), 1);
    assert.equal((after.get('ferry_step_results_total{type="exec",status="changed"}') ?? 0) - (before.get('ferry_step_results_total{type="exec",status="changed"}') ?? 0), 1);
  });

  it('counts chunk bytes served to agents', async () => {
    const before = await scrape(c);
    const b = memBundle('edge', '1.0.0', { 'bin/tool': randomFile(3) }, key.privatePem);
    await pushBundle(admin, b.signed, byDigest(async (d) => b.chunks.get(d)!), { progress: false });
    const stored = await c.ctx.bundles.require('edge', '1.0.0');
    await c.ctx.prefetch.run(stored, [{ agentId: agents[0]!.id, hostname: 'edge-1' }], () => undefined, new AbortController().signal);
    const after = await scrape(c);
    const chunkBytes = [...b.chunks.values()].reduce((n, x) => n + x.length, 0);
    const served = (after.get('ferry_chunk_bytes_served_total') ?? 0) - (before.get('ferry_chunk_bytes_served_total') ?? 0);
    // Every chunk once, plus its digest and framing (under 128 bytes) per message.
    assert.ok(served >= chunkBytes && served < chunkBytes + 128 * b.chunks.size, `${served} bytes for ${chunkBytes} of chunks`);
    assert.equal((after.get('ferry_chunks_served_total') ?? 0) - (before.get('ferry_chunks_served_total') ?? 0), b.chunks.size);
  });

  it('keeps each controller\'s metrics apart in one process', async () => {
    const other = await startController({ 'http-addr': '127.0.0.1:0' });
    try {
      const m = await scrape(other);
      assert.equal(m.get('ferry_enrollments_total{outcome="enrolled",code=""}'), 0);
      assert.equal((await scrape(c)).get('ferry_enrollments_total{outcome="enrolled",code=""}'), 2);
    } finally {
      await cleanup(other);
    }
  });

  it('stops listening when the controller stops; --http-addr off opens no listener', async () => {
    const other = await startController({ 'http-addr': 'off' });
    assert.equal(other.httpPort, undefined);
    await cleanup(other);
    const third = await startController({ 'http-addr': '127.0.0.1:0' });
    const port = third.httpPort!;
    await cleanup(third);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  });
});

describe('/readyz names the check that fails', () => {
  it('answers 503 with the failing check and its reason', async () => {
    const ops = await OpsHttp.start({
      addr: '127.0.0.1:0', log: silentLogger(), scrape: async () => ({ contentType: 'text/plain', body: '' }),
      ready: { store: async () => { throw new Error('database is locked'); }, grpc: async () => undefined },
    });
    try {
      const r = await fetch(`http://127.0.0.1:${ops.port}/readyz`);
      assert.equal(r.status, 503);
      assert.equal(await r.text(), 'failed store: database is locked\nok grpc\nnot ready\n');
      assert.equal((await fetch(`http://127.0.0.1:${ops.port}/healthz`)).status, 200);
    } finally {
      await ops.stop();
    }
  });

  it('refuses a busy address with a hint', async () => {
    const a = await OpsHttp.start({ addr: '127.0.0.1:0', log: silentLogger(), scrape: async () => ({ contentType: 'text/plain', body: '' }), ready: {} });
    try {
      await assert.rejects(OpsHttp.start({ addr: `127.0.0.1:${a.port}`, log: silentLogger(), scrape: async () => ({ contentType: 'text/plain', body: '' }), ready: {} }),
        /cannot listen for metrics and health checks on 127\.0\.0\.1:\d+: .*EADDRINUSE[\s\S]*/);
    } finally {
      await a.stop();
    }
  });
});
