import 'reflect-metadata';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { FERRY_VERSION, PROTOCOL_VERSION } from '../../common/src/version.js';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Controller } from '../../controller/src/controller.js';
import { createCsr, exportPrivateKeyPem, generateKeyPair } from '../../common/src/pki.js';
import { cleanup, enrollAgent, startController, waitFor, type TestAgent } from '../support/fixtures.js';

// An independent client of the published contract: the .proto files loaded
// at run time with @grpc/proto-loader, not the generated TypeScript.
function protoRoot(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)); dirname(d) !== d; d = dirname(d)) {
    if (existsSync(join(d, 'proto', 'ferry', 'v1', 'admin.proto'))) return join(d, 'proto');
  }
  throw new Error('proto/ not found');
}

const def = protoLoader.loadSync(['ferry/v1/admin.proto', 'ferry/v1/enrollment.proto', 'ferry/v1/session.proto', 'grpc/health/v1/health.proto'], {
  includeDirs: [protoRoot()], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pkg = grpc.loadPackageDefinition(def) as any;

function unary<T>(client: grpc.Client, method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (r: unknown, cb: (e: grpc.ServiceError | null, r: T) => void) => void>)[method]!(req, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

describe('published contract (proto-loader client)', function () {
  this.timeout(30_000);
  let c: Controller;
  const agents: TestAgent[] = [];
  before(async () => { c = await startController(); });
  after(async () => cleanup(c, agents));

  it('creates a token and lists agents over the admin socket', async () => {
    const admin = new pkg.ferry.v1.Admin(`unix://${c.config.adminSocket}`, grpc.credentials.createInsecure());
    const res = await unary<{ join_string: string; token: { max_uses: number } }>(admin, 'CreateToken', {
      ttl_ms: 60_000, max_uses: 3, labels: [{ key: 'site', value: 'plant-7' }],
    });
    assert.match(res.join_string, /^ferry1\/127\.0\.0\.1:\d+\/fy1\./);
    assert.equal(res.token.max_uses, 3);
    const a = await enrollAgent(c, 'contract-1', { js: res.join_string });
    agents.push(a);
    await waitFor(() => a.loop.state === 'connected', 5000, 'connected');
    const list = await unary<{ agents: Array<{ id: string; connected: boolean; labels: Array<{ key: string; value: string }> }> }>(
      admin, 'ListAgents', { selector: 'site=plant-7' });
    assert.equal(list.agents.length, 1);
    assert.equal(list.agents[0]!.id, a.id);
    assert.equal(list.agents[0]!.connected, true);
    const bad = await unary(admin, 'ListAgents', { selector: 'bad key' }).catch((e: grpc.ServiceError) => e);
    assert.equal((bad as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);
    assert.equal((bad as grpc.ServiceError).metadata.get('ferry-code')[0], 'INVALID_ARGUMENT');
    admin.close();
  });

  it('serves grpc.health.v1 on the TLS port and the admin socket', async () => {
    const tls = new pkg.grpc.health.v1.Health(`127.0.0.1:${c.port}`, grpc.credentials.createSsl(Buffer.from(c.ctx.ca.certPem)));
    assert.deepEqual(await unary(tls, 'Check', { service: '' }), { status: 'SERVING' });
    assert.deepEqual(await unary(tls, 'Check', { service: 'ferry.v1.AgentSession' }), { status: 'SERVING' });
    const unknown = await unary(tls, 'Check', { service: 'nope' }).catch((e: grpc.ServiceError) => e);
    assert.equal((unknown as grpc.ServiceError).code, grpc.status.NOT_FOUND);
    tls.close();
  });

  it('refuses the admin API on the TLS port without an operator certificate, and serves it with one', async () => {
    const anon = new pkg.ferry.v1.Admin(`127.0.0.1:${c.port}`, grpc.credentials.createSsl(Buffer.from(c.ctx.ca.certPem)));
    const e = await unary(anon, 'ListTokens', {}).catch((err: grpc.ServiceError) => err);
    assert.equal((e as grpc.ServiceError).code, grpc.status.UNAUTHENTICATED);
    anon.close();

    const local = new pkg.ferry.v1.Admin(`unix://${c.config.adminSocket}`, grpc.credentials.createInsecure());
    const keys = await generateKeyPair();
    const issued = await unary<{ cert_pem: string; ca_pem: string }>(local, 'IssueOperatorCert', { name: 'alice', csr_pem: await createCsr(keys, 'alice') });
    local.close();
    const op = new pkg.ferry.v1.Admin(`127.0.0.1:${c.port}`, grpc.credentials.createSsl(
      Buffer.from(issued.ca_pem), Buffer.from(await exportPrivateKeyPem(keys.privateKey)), Buffer.from(issued.cert_pem)));
    const tokens = await unary<{ tokens: unknown[] }>(op, 'ListTokens', {});
    assert.ok(tokens.tokens.length >= 1);
    op.close();
    const audit = await c.ctx.audit.list();
    assert.ok(audit.some((r) => r.actor === 'local' && r.action === 'operator.cert' && r.subject === 'alice'));
  });

  it('runs an exec job over AgentSession as published: kind in JobStart, sequenced output and result, acks, a duplicate dropped', async () => {
    const a = await enrollAgent(c, 'raw-agent', { start: false });
    agents.push(a);
    const { keyPem, certPem, caPem } = a.state.load();
    const client = new pkg.ferry.v1.AgentSession(`127.0.0.1:${c.port}`, grpc.credentials.createSsl(Buffer.from(caPem), Buffer.from(keyPem), Buffer.from(certPem)));
    const call = client.Connect() as grpc.ClientDuplexStream<unknown, Record<string, unknown> & { msg: string }>;
    const got: Array<Record<string, unknown> & { msg: string }> = [];
    call.on('data', (m) => got.push(m));
    call.on('error', () => undefined);
    const facts = { hostname: 'raw-agent', os: 'Debian GNU/Linux', os_release: '12', kernel: '6.1.0', arch: 'x64', cpus: 2, memory_bytes: 1 << 30 };
    // A version the controller works with (common/src/version.ts): an unknown one is refused at hello.
    call.write({ hello: { agent_version: FERRY_VERSION, protocol_version: PROTOCOL_VERSION, facts, open_jobs: ['j-unknown-1'], bundles: [] } });
    await waitFor(() => got.some((m) => m.msg === 'welcome'), 5000, 'welcome');
    await waitFor(() => got.some((m) => m.msg === 'job_cancel'), 5000, 'cancel of a job the controller does not track');
    assert.deepEqual(got.find((m) => m.msg === 'job_cancel')!.job_cancel, { job_id: 'j-unknown-1', reason: 'the controller no longer tracks this job' });

    const lines: string[] = [];
    const run = c.ctx.exec.run({ selector: '', hosts: [], all: true, argv: ['uname', '-a'], timeoutMs: 10_000, concurrency: 0, env: {}, cwd: '' }, 'test',
      [{ agentId: a.id, hostname: 'raw-agent' }], (ev) => { if (ev.event?.$case === 'line') lines.push(ev.event.value.line); }, new AbortController().signal);
    await waitFor(() => got.some((m) => m.msg === 'job_start'), 5000, 'job start');
    const start = got.find((m) => m.msg === 'job_start')!.job_start as { job_id: string; kind: string; exec: { argv: string[]; timeout_ms: number } };
    assert.equal(start.kind, 'JOB_KIND_EXEC');
    assert.deepEqual(start.exec.argv, ['uname', '-a']);
    assert.equal(start.exec.timeout_ms, 10_000);
    const id = start.job_id;
    call.write({ output: { job_id: id, seq: 1, stream: 'OUTPUT_STREAM_STDOUT', line: 'Linux raw', time_ms: 1 } });
    call.write({ output: { job_id: id, seq: 1, stream: 'OUTPUT_STREAM_STDOUT', line: 'Linux raw', time_ms: 1 } });
    call.write({ job_result: { job_id: id, seq: 2, status: 'succeeded', message: '', duration_ms: 3, exit: { exit_code: 0, signal: '', timed_out: false } } });
    const summary = await run;
    assert.deepEqual(summary, { matched: 1, succeeded: 1, failed: 0, offline: 0 });
    assert.deepEqual(lines, ['Linux raw'], 'the duplicate line is dropped');
    await waitFor(() => got.some((m) => m.msg === 'ack' && (m.ack as { job_id: string; seq: number }).seq === 2), 5000, 'result acknowledged');
    call.end();
    client.close();
  });

  it('refuses an agent certificate on the admin API', async () => {
    const a = agents[0]!;
    const { keyPem, certPem, caPem } = a.state.load();
    const client = new pkg.ferry.v1.Admin(`127.0.0.1:${c.port}`, grpc.credentials.createSsl(Buffer.from(caPem), Buffer.from(keyPem), Buffer.from(certPem)));
    const e = await unary(client, 'ListAgents', {}).catch((err: grpc.ServiceError) => err);
    assert.equal((e as grpc.ServiceError).code, grpc.status.PERMISSION_DENIED);
    client.close();
  });
});
