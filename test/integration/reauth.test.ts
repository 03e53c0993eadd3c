import 'reflect-metadata';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { Metadata } from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { pino } from 'pino';
import { certLease, describeLease } from '../../agent/src/enroll/reauth.js';
import { controllerCreds } from '../../agent/src/grpc-creds.js';
import { ErrorCode, type FerryError } from '../../common/src/errors.js';
import { EnrollmentClient, type ReauthRequest } from '../../common/src/gen/ferry/v1/enrollment.js';
import { fromServiceError } from '../../common/src/grpc-status.js';
import { createCsr, exportPrivateKeyPem, generateKeyPair, keyPairFromPem } from '../../common/src/pki.js';
import { signReauth } from '../../common/src/reauth.js';
import { loadControllerConfig } from '../../controller/src/config.js';
import { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, tempDir, waitFor, type TestAgent } from '../support/fixtures.js';
import { rawSession } from '../support/raw-session.js';

/** A controller whose log lines are kept for the test to read. */
async function loggedController(): Promise<{ c: Controller; lines: Array<Record<string, unknown>> }> {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const cfg = loadControllerConfig({ data: tempDir(), listen: '127.0.0.1:0', heartbeat: '5s', 'agent-cert-ttl': '1h' }, undefined, {});
  return { c: await Controller.start(cfg, pino({ level: 'info' }, sink)), lines };
}

/** Replaces the agent's certificate with one for the same key that has already expired. */
async function expireCert(c: Controller, a: TestAgent): Promise<void> {
  const current = new x509.X509Certificate(readFileSync(a.state.certPath, 'utf8'));
  const issued = await c.ctx.ca.issue({ publicKey: current.publicKey, commonName: a.id, role: 'agent', ttlMs: 1 });
  a.state.saveCert(issued.certPem);
  await waitFor(() => certLease(issued.certPem).expired, 3000, 'the certificate to lapse');
}

function unary<Req, Res>(client: EnrollmentClient, method: 'challenge' | 'reauthenticate', req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    (client[method] as unknown as (r: Req, m: Metadata, cb: (e: unknown, r: Res) => void) => void).call(client, req, new Metadata(),
      (err, res) => (err ? reject(fromServiceError(err)) : resolve(res)));
  });
}

describe('re-authentication of an agent whose certificate lapsed', function () {
  this.timeout(60_000);
  let c: Controller;
  let lines: Array<Record<string, unknown>>;
  let client: EnrollmentClient;
  const agents: TestAgent[] = [];
  before(async () => {
    ({ c, lines } = await loggedController());
    client = new EnrollmentClient(`127.0.0.1:${c.port}`, controllerCreds(c.ctx.ca.certPem));
  });
  after(async () => {
    client.close();
    await cleanup(c, agents);
  });

  /** A well-formed request for `id`, signed by `keyPem`, with a CSR for `csrKeyPem` (default: the same key). */
  async function request(id: string, keyPem: string, opts: { csrKeyPem?: string; csrName?: string; nonceFor?: string } = {}): Promise<ReauthRequest> {
    const { nonce } = await unary<{ agentId: string }, { nonce: Buffer }>(client, 'challenge', { agentId: opts.nonceFor ?? id });
    const csrPem = await createCsr(await keyPairFromPem(opts.csrKeyPem ?? keyPem), opts.csrName ?? id);
    return { agentId: id, csrPem, nonce, signature: signReauth(keyPem, id, nonce, csrPem), agentVersion: 'test' };
  }
  const refusal = (req: ReauthRequest) => unary(client, 'reauthenticate', req).then(() => assert.fail('re-authentication was accepted'), (e: FerryError) => e);

  it('an agent started after its certificate expired gets a new one by itself and reconnects', async () => {
    const a = await enrollAgent(c, 'weekend-box', { start: false });
    agents.push(a);
    await expireCert(c, a);
    assert.match(describeLease(readFileSync(a.state.certPath, 'utf8')).next, /re-authenticates with its enrolled key/);
    const serialBefore = new X509Certificate(readFileSync(a.state.certPath)).serialNumber;
    a.loop.start();
    await waitFor(() => a.loop.state === 'connected', 15_000, 'connected after re-authentication');
    const cert = new X509Certificate(readFileSync(a.state.certPath));
    assert.notEqual(cert.serialNumber, serialBefore);
    assert.ok(!certLease(cert.toString()).expired);
    assert.equal((await c.ctx.agents.require(a.id)).certSerial, cert.serialNumber.toLowerCase());
    const audit = await c.ctx.audit.list(20);
    assert.ok(audit.some((e) => e.action === 'agent.reauthenticate' && e.subject === a.id));
  });

  it('a session refused for an expired certificate is logged with the agent id it names', async () => {
    const a = await enrollAgent(c, 'stale-box', { start: false });
    agents.push(a);
    await expireCert(c, a);
    const from = lines.length;
    a.loop.start();
    await waitFor(() => a.loop.state === 'connected', 15_000, 'connected');
    // The agent re-authenticated before dialling; a session it opened with the expired certificate is named in the log.
    await a.loop.stop(500);
    await expireCert(c, a);
    const err = await rawSession(c, a.state.load());
    assert.equal(err.code, ErrorCode.Unauthenticated);
    assert.match(err.message, new RegExp(`certificate of agent ${a.id} expired`));
    await waitFor(() => lines.slice(from).some((l) => l['msg'] === 'session call refused' && l['agent'] === a.id && l['tlsError'] === 'CERT_HAS_EXPIRED'), 5000, 'log line naming the agent');
  });

  it('refuses a challenge signed by another key', async () => {
    const a = await enrollAgent(c, 'victim-1', { start: false });
    agents.push(a);
    const other = await exportPrivateKeyPem((await generateKeyPair()).privateKey);
    // Another key with its own CSR: not the enrolled key.
    const e1 = await refusal(await request(a.id, other));
    assert.equal(e1.code, ErrorCode.Unauthenticated);
    assert.match(e1.message, /not for the key this agent enrolled with/);
    // The enrolled key's CSR (lifted from somewhere) but the challenge signed by another key.
    const { keyPem } = a.state.load();
    const req = await request(a.id, keyPem);
    req.signature = signReauth(other, a.id, req.nonce, req.csrPem);
    const e2 = await refusal(req);
    assert.match(e2.message, /signature does not verify/);
  });

  it('refuses a replayed challenge', async () => {
    const a = await enrollAgent(c, 'replay', { start: false });
    agents.push(a);
    const req = await request(a.id, a.state.load().keyPem);
    await unary(client, 'reauthenticate', req);
    const e = await refusal(req);
    assert.equal(e.code, ErrorCode.Unauthenticated);
    assert.match(e.message, /already used/);
  });

  it('refuses a CSR or a challenge for another agent id', async () => {
    const a = await enrollAgent(c, 'agent-a', { start: false });
    const b = await enrollAgent(c, 'agent-b', { start: false });
    agents.push(a, b);
    const aKey = a.state.load().keyPem;
    // A's key asking for B's identity.
    const e1 = await refusal(await request(b.id, aKey));
    assert.match(e1.message, /not for the key this agent enrolled with/);
    // A's key and id, but the CSR names B.
    const e2 = await refusal(await request(a.id, aKey, { csrName: b.id }));
    assert.match(e2.message, new RegExp(`CSR names agent ${b.id}`));
    // A challenge issued for B answered as A.
    const e3 = await refusal(await request(a.id, aKey, { nonceFor: b.id }));
    assert.match(e3.message, /issued for another agent/);
  });

  it('refuses a revoked agent\'s key', async () => {
    const a = await enrollAgent(c, 'revoked-box', { start: false });
    agents.push(a);
    await c.ctx.agents.revoke(a.id, Date.now());
    const e = await refusal(await request(a.id, a.state.load().keyPem));
    assert.equal(e.code, ErrorCode.AgentRevoked);
    // And the agent itself stops for good rather than retrying.
    await expireCert(c, a);
    a.loop.start();
    await waitFor(() => a.loop.fatal !== undefined, 10_000, 'agent told it is revoked');
    assert.equal(a.loop.fatal!.code, ErrorCode.AgentRevoked);
  });

  it('past the re-authentication window: refused on both sides until an operator allows it, then back by itself', async () => {
    const a = await enrollAgent(c, 'long-gone', { start: false });
    agents.push(a);
    const longAgo = Date.now() - 200 * 86_400_000;
    await c.ctx.db.run('UPDATE agents SET last_seen_at = ?, enrolled_at = ? WHERE id = ?', [longAgo, longAgo, a.id]);
    await expireCert(c, a);
    const errors: FerryError[] = [];
    const from = lines.length;
    const { SessionLoop } = await import('../../agent/src/session/session-loop.js');
    const { Backoff } = await import('../../agent/src/session/backoff.js');
    const { fakeFacts } = await import('../support/fixtures.js');
    const { silentLogger } = await import('../../common/src/log.js');
    const loop = new SessionLoop({
      state: a.state, facts: async () => fakeFacts(a.hostname), log: silentLogger(), backoff: new Backoff(50, 200),
      onState: (_s, d) => { if (d.error) errors.push(d.error); },
    });
    a.loop = loop;
    loop.start();
    await waitFor(() => errors.some((e) => e.code === ErrorCode.ReauthWindowPassed), 10_000, 'the agent told the window has passed');
    const told = errors.find((e) => e.code === ErrorCode.ReauthWindowPassed)!;
    assert.match(told.message, /last seen 200 days ago/);
    assert.match(told.hint ?? '', new RegExp(`ferry agents allow-reauth ${a.id}`));
    assert.ok(lines.slice(from).some((l) => l['msg'] === 're-authentication refused' && l['agent'] === a.id && l['code'] === ErrorCode.ReauthWindowPassed));
    assert.equal(loop.fatal, undefined, 'the agent keeps trying: an operator can let it back');
    await c.ctx.agents.allowReauth(a.id, Date.now());
    await waitFor(() => loop.state === 'connected', 15_000, 'connected once allowed');
  });
});
