import 'reflect-metadata';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { ErrorCode } from '../../common/src/errors.js';
import type { Controller } from '../../controller/src/controller.js';
import { cleanup, enrollAgent, startController, waitFor, type TestAgent } from '../support/fixtures.js';
import { rawSession } from '../support/raw-session.js';
import { renewalDue } from '../../agent/src/session/cert-renewal.js';

describe('agent sessions', function () {
  this.timeout(60_000);
  let c: Controller;
  const agents: TestAgent[] = [];
  before(async () => { c = await startController({ 'agent-cert-ttl': '12s' }); });
  after(async () => cleanup(c, agents));

  it('connects, says hello with facts, and shows as connected', async () => {
    const a = await enrollAgent(c, 'edge-1');
    agents.push(a);
    await waitFor(() => a.loop.state === 'connected', 5000, 'agent connected');
    assert.ok(c.ctx.sessions.get(a.id));
    const rec = await c.ctx.agents.require(a.id);
    assert.equal(rec.facts.hostname, 'edge-1');
    assert.ok(rec.lastSeenAt && rec.lastSeenAt > Date.now() - 10_000);
  });

  it('refuses a session without a client certificate', async () => {
    const e = await rawSession(c);
    assert.equal(e.code, ErrorCode.Unauthenticated);
    assert.match(e.message, /no valid client certificate/);
  });

  it('refuses a certificate from another CA', async () => {
    const other = await startController();
    try {
      const foreign = await enrollAgent(other, 'foreign', { start: false });
      const { keyPem, certPem } = foreign.state.load();
      const e = await rawSession(c, { keyPem, certPem });
      assert.equal(e.code, ErrorCode.Unauthenticated);
      await cleanup(undefined, [foreign]);
    } finally {
      await cleanup(other);
    }
  });

  it('refuses an operator certificate on the agent session', async () => {
    const { generateKeyPair, exportPrivateKeyPem } = await import('../../common/src/pki.js');
    const keys = await generateKeyPair();
    const issued = await c.ctx.ca.issue({ publicKey: keys.publicKey, commonName: 'alice', role: 'operator', ttlMs: 60_000 });
    const e = await rawSession(c, { keyPem: await exportPrivateKeyPem(keys.privateKey), certPem: issued.certPem });
    assert.equal(e.code, ErrorCode.PermissionDenied);
  });

  it('renews its certificate over the session before it expires', async () => {
    const a = agents[0]!;
    const serial = new X509Certificate(readFileSync(a.state.certPath)).serialNumber;
    const issuedAt = Date.now();
    // 12 s certificates are renewed when under a third of their life remains (~7 s in).
    await waitFor(() => new X509Certificate(readFileSync(a.state.certPath)).serialNumber !== serial, 15_000, 'renewed certificate');
    assert.ok(Date.now() - issuedAt > 3000, 'not renewed while most of its life remained');
    await waitFor(() => a.loop.state === 'connected', 5000, 'reconnected with the new certificate');
    const renewed = new X509Certificate(readFileSync(a.state.certPath)).serialNumber;
    const rec = await c.ctx.agents.require(a.id);
    assert.equal(rec.certSerial, renewed.toLowerCase());
    // The loop renews only when renewalDue says so; a fresh certificate is not due (no loop of renewals).
    assert.equal(renewalDue(readFileSync(a.state.certPath, 'utf8'), Date.now()), false, 'a fresh certificate is not renewed again');
  });

  it('closes a revoked agent\'s session and refuses it from then on', async () => {
    const a = await enrollAgent(c, 'to-revoke');
    agents.push(a);
    await waitFor(() => a.loop.state === 'connected', 5000, 'connected');
    await c.ctx.agents.revoke(a.id, Date.now());
    c.ctx.sessions.get(a.id)!.close('revoked');
    await waitFor(() => a.loop.fatal !== undefined, 5000, 'agent told it is revoked');
    assert.equal(a.loop.fatal!.code, ErrorCode.AgentRevoked);
    assert.match(a.loop.fatal!.message, /revoked/);
    assert.equal(c.ctx.sessions.get(a.id), undefined);
  });
});

describe('agent reconnects', function () {
  this.timeout(60_000);

  it('comes back by itself after the controller restarts on the same address', async () => {
    const probe = createServer();
    const port = await new Promise<number>((r) => probe.listen(0, '127.0.0.1', () => r((probe.address() as { port: number }).port)));
    await new Promise((r) => probe.close(r));
    let c = await startController({ listen: `127.0.0.1:${port}` });
    const dataDir = c.config.dataDir;
    const a = await enrollAgent(c, 'phoenix');
    try {
      await waitFor(() => a.loop.state === 'connected', 5000, 'connected');
      await c.stop(1000);
      await waitFor(() => a.loop.state !== 'connected', 5000, 'agent noticed');
      c = await startController({ listen: `127.0.0.1:${port}` }, dataDir);
      await waitFor(() => a.loop.state === 'connected' && c.ctx.sessions.get(a.id) !== undefined, 15_000, 'reconnected');
    } finally {
      await cleanup(c, [a]);
    }
  });
});
